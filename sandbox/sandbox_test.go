package sandbox_test

import (
	"testing"
)

func TestHelloWarm(t *testing.T) {
	env := newEnv(t)
	m := newManager(t, env, nil)

	var got string
	mustRun(t, m, "hello", helloCode, &got)
	if got != "hello" {
		t.Fatalf("body = %q, want hello", got)
	}
	list := m.List()
	if len(list) != 1 {
		t.Fatalf("List() = %d sandboxes, want 1", len(list))
	}
	first := list[0]
	procsBefore := cgroupProcs(t, env, first.ID)

	mustRun(t, m, "hello", helloCode, &got)
	list = m.List()
	if len(list) != 1 || list[0].ID != first.ID || list[0].Pid != first.Pid {
		t.Fatalf("second call served by %+v, want the runtime of %+v", list, first)
	}
	if list[0].Invocations != 2 {
		t.Errorf("Invocations = %d, want 2", list[0].Invocations)
	}
	if list[0].MemoryBytes == 0 {
		t.Errorf("MemoryBytes = 0, want the cgroup's usage")
	}
	procsAfter := cgroupProcs(t, env, first.ID)
	if len(procsBefore) != len(procsAfter) || len(procsAfter) != 2 {
		t.Errorf("cgroup procs before %v after %v, want the same 2 (tini + node)", procsBefore, procsAfter)
	}
}

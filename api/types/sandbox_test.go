package types

import "testing"

// TestLimitsOverride: every non-zero field of the override wins, a zero one
// inherits, and TmpMB (daemon-wide) is never overridden.
func TestLimitsOverride(t *testing.T) {
	base := Limits{MemoryMB: 256, CPUs: 1, Pids: 128, TmpMB: 16, ExecTimeoutMS: 30000, MaxConcurrency: 64, MaxResponseBytes: 1 << 20}
	if got := base.Override(Limits{}); got != base {
		t.Fatalf("empty override = %+v, want %+v", got, base)
	}
	o := Limits{MemoryMB: 512, CPUs: 0.5, Pids: 32, TmpMB: 1, ExecTimeoutMS: 1000, MaxConcurrency: 2, MaxResponseBytes: 10}
	want := o
	want.TmpMB = base.TmpMB
	if got := base.Override(o); got != want {
		t.Fatalf("full override = %+v, want %+v", got, want)
	}
	if got := base.Override(Limits{Pids: 40}); got.Pids != 40 || got.MemoryMB != 256 || got.MaxResponseBytes != 1<<20 {
		t.Fatalf("pids-only override = %+v", got)
	}
}

package sandbox_test

import (
	"context"
	"testing"
)

func BenchmarkWarmInvoke(b *testing.B) {
	env := newEnv(b)
	m := newManager(b, env, nil)
	mustRun(b, m, "bench", helloCode, nil)
	r := req(helloCode)
	r.Container = "bench"
	r.Code = "" // the agent compiled it already
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		call, err := m.Invoke(ctx, "bench", r)
		if err != nil || call.Status != 200 {
			b.Fatalf("%v %v", call, err)
		}
		_ = call.Body.Close()
	}
}

func BenchmarkColdStart(b *testing.B) {
	env := newEnv(b)
	m := newManager(b, env, nil)
	b.ResetTimer()
	for b.Loop() {
		mustRun(b, m, "cold", helloCode, nil)
		if err := m.Kill(m.List()[0].ID); err != nil {
			b.Fatal(err)
		}
	}
}

package agent_test

import (
	"context"
	"testing"
)

// BenchmarkDo measures one warm hello-world round trip (Go -> agent ->
// Go) over the socketpair.
func BenchmarkDo(b *testing.B) {
	h := startAgent(b)
	req := newReq(`module.exports = function (ctx, cb) { cb(null, 'hello world'); }`)
	ctx := context.Background()
	h.do(b, req) // compile once
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := h.client.Do(ctx, req)
		if err != nil || resp.Status != 200 {
			b.Fatalf("Do: %v %+v", err, resp)
		}
	}
}

// BenchmarkDoParallel is BenchmarkDo with many calls in flight at once.
func BenchmarkDoParallel(b *testing.B) {
	h := startAgent(b)
	req := newReq(`module.exports = function (ctx, cb) { cb(null, 'hello world'); }`)
	h.do(b, req)
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			resp, err := h.client.Do(ctx, req)
			if err != nil || resp.Status != 200 {
				b.Errorf("Do: %v %+v", err, resp)
				return
			}
		}
	})
}

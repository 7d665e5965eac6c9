package daemon_test

import (
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// Hostile outputs: whatever a webtask answers or prints, the daemon stays
// up, the caller gets a JSON error or a bounded answer, and a neighbour
// container keeps answering.
func TestHostileOutputsAreContained(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.Limits.MemoryMB = 512 // room for the webtask to build a huge answer
	cfg.Sandbox.ExecTimeout = 3 * time.Second
	// A huge answer is refused by the response budget: the whole body is
	// known before the head (cb's result, res.end after writes in one
	// tick), so it is refused with a JSON error, never cut off midway.
	cfg.Sandbox.MaxResponseBytes = 32 << 20
	env := Start(t, cfg)
	env.PutWebtask("calm", "ok", `module.exports = cb => cb(null, 'fine')`, nil)
	MustStatus(t, env.Call("GET", "/api/run/calm/ok", "", nil), 200, "neighbour")

	cases := []struct {
		name, code string
		check      func(t *testing.T, r Response)
	}{
		{"huge JSON result", `module.exports = cb => cb(null, 'x'.repeat(100 * 1024 * 1024))`, wantJSONError},
		{"huge raw body", `module.exports = (ctx, req, res) => { const b = Buffer.alloc(16 << 20, 97); for (let i = 0; i < 8; i++) res.write(b); res.end(); }`, wantJSONError},
		{"huge header", `module.exports = (ctx, req, res) => { res.setHeader('x-big', 'y'.repeat(8 << 20)); res.end('ok'); }`, wantAnswer},
		{"endless console output", `module.exports = cb => { for (let i = 0; i < 200000; i++) console.log('spam', i, 'z'.repeat(200)); cb(null, 'done'); }`, wantAnswer},
		{"never answers", `module.exports = cb => {}`, wantJSONError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env.PutWebtask("hostile", "h", c.code, nil)
			r := env.Call("GET", "/api/run/hostile/h", "", nil)
			t.Logf("status %d, %d bytes: %.200s", r.Status, len(r.Body), r.Body)
			c.check(t, r)
			MustStatus(t, env.Call("GET", "/api/run/calm/ok", "", nil), 200, "neighbour after "+c.name)
			MustStatus(t, env.Call("GET", "/healthz", "", nil), 200, "daemon after "+c.name)
		})
	}
}

// wantJSONError: an error status with the API's JSON error body.
func wantJSONError(t *testing.T, r Response) {
	t.Helper()
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if r.Status < 400 {
		t.Fatalf("status %d, want an error", r.Status)
	}
	r.JSON(t, &e)
	if e.Code != r.Status || e.Message == "" {
		t.Fatalf("error body %.300s", r.Body)
	}
}

// wantAnswer: any complete HTTP answer (success or a JSON error).
func wantAnswer(t *testing.T, r Response) {
	t.Helper()
	if r.Status >= 400 && !strings.Contains(string(r.Body), `"code"`) {
		t.Fatalf("status %d without a JSON error body: %.300s", r.Status, r.Body)
	}
}

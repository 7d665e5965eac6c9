package daemon_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// TestCodeBlobRetentionCollectsAtStart: with --code-blob-retention the
// daemon collects, at start, the code blob of an unnamed code token older
// than the retention; its token then answers 404, and a named webtask is
// untouched.
func TestCodeBlobRetentionCollectsAtStart(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	env := Start(t, cfg)
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": "gc", "code": "module.exports = cb => cb(null, 'blob')"})
	MustStatus(t, r, 200, "issue a code token")
	codeToken := strings.TrimSpace(string(r.Body))
	env.PutWebtask("gc", "named", "module.exports = cb => cb(null, 'named')", nil)
	env.Stop()

	cfg.CodeBlobRetention = time.Nanosecond
	var logs LogBuffer
	env = StartLogged(t, cfg, &logs)
	deadline := time.Now().Add(20 * time.Second)
	for !bytes.Contains(logs.Bytes(), []byte(`msg="code blobs collected" removed=1`)) {
		if time.Now().After(deadline) {
			t.Fatalf("no collection logged within 20s:\n%s", logs.Bytes())
		}
		time.Sleep(20 * time.Millisecond) // polling a log, bounded by the deadline
	}
	MustStatus(t, env.Call("POST", "/api/run/gc", codeToken, nil), 404, "run the collected code token")
	MustStatus(t, env.Call("GET", "/api/run/gc/named", "", nil), 200, "run the named webtask")
}

package daemon_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// echoBodyCode answers what a (ctx, cb) webtask got of the request body.
const echoBodyCode = `module.exports = function (ctx, cb) {
  cb(null, { has_body: 'body' in ctx, body: ctx.body, body_raw: ctx.body_raw, data_k: ctx.data.k });
};`

// echoStreamCode answers what a (ctx, req, res) webtask reads from req.
const echoStreamCode = `module.exports = function (ctx, req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ stream: Buffer.concat(chunks).toString('base64'), has_body: 'body' in ctx }));
  });
};`

type bodyEcho struct {
	HasBody bool   `json:"has_body"`
	Body    any    `json:"body"`
	BodyRaw string `json:"body_raw"`
	DataK   any    `json:"data_k"`
}

// createAsWt issues a named webtask with the claims plain `wt create` sends
// (no pb, mb 1), plus extra.
func createAsWt(t *testing.T, env *Env, container, name, code string, extra map[string]any) {
	t.Helper()
	claims := map[string]any{"ten": container, "jtn": name, "code": code, "dd": 0, "dr": 1, "mb": 1}
	for k, v := range extra {
		claims[k] = v
	}
	MustStatus(t, env.Call("POST", "/api/tokens/issue", env.Master, claims), 200, "create "+name)
}

func postBody(t *testing.T, env *Env, path, contentType, body string) bodyEcho {
	t.Helper()
	return callJSON[bodyEcho](t, env, "POST", path, "", body, "Content-Type", contentType)
}

// §3.3: without a pb claim 1/2-arity webtasks get their body parsed (JSON
// and form) and merged (mb 1); pb 0 turns parsing off unless the query
// says webtask_pb=1; 3-arity webtasks read the request stream untouched.
func TestBodyParsingByArityE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	createAsWt(t, env, "body", "cb", echoBodyCode, nil)
	createAsWt(t, env, "body", "never", echoBodyCode, map[string]any{"pb": 0})
	createAsWt(t, env, "body", "stream", echoStreamCode, nil)

	got := postBody(t, env, "/api/run/body/cb", "application/json", `{"k":"v","n":[1,2]}`)
	if want := map[string]any{"k": "v", "n": []any{1.0, 2.0}}; !reflect.DeepEqual(got.Body, want) || got.BodyRaw != `{"k":"v","n":[1,2]}` || got.DataK != "v" {
		t.Errorf("JSON body by default: %+v", got)
	}
	got = postBody(t, env, "/api/run/body/cb", "application/x-www-form-urlencoded", "k=form&x=a+b")
	if want := map[string]any{"k": "form", "x": "a b"}; !reflect.DeepEqual(got.Body, want) || got.DataK != "form" {
		t.Errorf("form body by default: %+v", got)
	}

	got = postBody(t, env, "/api/run/body/never", "application/json", `{"k":"v"}`)
	if got.HasBody || got.BodyRaw != "" || got.DataK != nil {
		t.Errorf("pb 0 parsed the body: %+v", got)
	}
	got = postBody(t, env, "/api/run/body/never?webtask_pb=1", "application/json", `{"k":"v"}`)
	if want := map[string]any{"k": "v"}; !reflect.DeepEqual(got.Body, want) || got.DataK != "v" {
		t.Errorf("pb 0 with webtask_pb=1: %+v", got)
	}

	raw := "{\"k\":\"v\"}\x00\xff raw bytes"
	r := env.Call("POST", "/api/run/body/stream", "", raw, "Content-Type", "application/json")
	MustStatus(t, r, 200, "3-arity run")
	var s struct {
		Stream  string `json:"stream"`
		HasBody bool   `json:"has_body"`
	}
	r.JSON(t, &s)
	if got, _ := base64.StdEncoding.DecodeString(s.Stream); string(got) != raw || s.HasBody {
		t.Errorf("3-arity got stream %q (has ctx.body %v), want the raw body %q", got, s.HasBody, raw)
	}
}

// A webtask stored before migration 0006 without a pb claim (then stored
// as 0) gets the default after the upgrade: its JSON body is parsed.
func TestOldStoredWebtaskGetsPBDefaultE2E(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	env := Start(t, cfg)
	createAsWt(t, env, "old", "cb", echoBodyCode, nil)
	env.Stop()

	// Put the database back as 0005 left it: pb NOT NULL, 0 for "absent",
	// no later migration's columns and tables (0007's response budget,
	// 0008's audit log, 0009's quota overrides, 0010's modules, 0011's
	// cron claims and members).
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(cfg.DataDir, "webtaskd.db")+"?_foreign_keys=on")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`ALTER TABLE webtasks DROP COLUMN pb`,
		`ALTER TABLE webtasks ADD COLUMN pb INTEGER NOT NULL DEFAULT 0`,
		`ALTER TABLE container_limits DROP COLUMN max_response_bytes`,
		// 0011: cron tick claims, cluster members.
		`DROP TABLE IF EXISTS cron_claims`,
		`DROP TABLE IF EXISTS cluster_members`,
		// 0010: modules and transpiled code.
		`DROP TABLE IF EXISTS transpiled`,
		`DROP TABLE IF EXISTS node_modules`,
		`DROP TABLE IF EXISTS audit_log`,
		`ALTER TABLE container_limits DROP COLUMN max_webtasks`,
		`ALTER TABLE container_limits DROP COLUMN max_cron_jobs`,
		`ALTER TABLE container_limits DROP COLUMN max_storage_bytes`,
		`DELETE FROM schema_migrations WHERE version >= 6`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var ver int
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations`).Scan(&ver); err != nil || ver != 5 {
		t.Fatalf("schema version %d, %v", ver, err)
	}
	db.Close()

	env = Start(t, cfg)
	got := postBody(t, env, "/api/run/old/cb", "application/json", `{"k":"v"}`)
	if want := map[string]any{"k": "v"}; !reflect.DeepEqual(got.Body, want) || got.DataK != "v" {
		t.Errorf("old webtask after the migration: %+v", got)
	}
}

// The reference runtime's compile errors, word for word: a function with
// four parameters, and empty code (valid code that exports no function).
func TestReferenceCompileErrorsE2E(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	for _, tc := range []struct{ name, code, msg string }{
		{"four", `module.exports = function (a, b, c, d) {};`,
			"Unable to compile submitted JavaScript. Error: The JavaScript function must have one of the following signatures: ([ctx], callback) or (ctx, req, res)."},
		{"empty", ``, "Unable to compile submitted JavaScript. Error: Supplied code must return or export a function."},
	} {
		createAsWt(t, env, "errs", tc.name, tc.code, nil)
		for i := 0; i < 2; i++ { // compiled, then from the agent's cache
			r := env.Call("GET", "/api/run/errs/"+tc.name, "", nil)
			var b map[string]any
			if r.Status != 400 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || json.Unmarshal(r.Body, &b) != nil {
				t.Fatalf("%s: %d %s", tc.name, r.Status, r.Body)
			}
			if want := map[string]any{"code": 400.0, "error": tc.msg, "details": tc.msg}; !reflect.DeepEqual(b, want) {
				t.Fatalf("%s: body %s, want %v", tc.name, r.Body, want)
			}
		}
	}
}

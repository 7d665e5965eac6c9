package daemon_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// barrierSetCode reads the storage, waits (in the shared runtime) until two
// calls have read, then both set: the second set is stale.
const barrierSetCode = `module.exports = function (ctx, cb) {
  ctx.storage.get(function (err, data) {
    if (err) return cb(err);
    var go = function () {
      ctx.storage.set({ winner: ctx.query.who }, function (err) {
        if (!err) return cb(null, { won: true, read: data === undefined ? null : data });
        cb(null, { won: false, code: err.code, conflict: err.conflict });
      });
    };
    global.waiting = global.waiting || [];
    global.waiting.push(go);
    if (global.waiting.length === 2) {
      var w = global.waiting;
      global.waiting = [];
      w.forEach(function (f) { f(); });
    }
  });
};`

type setOutcome struct {
	Won      bool              `json:"won"`
	Code     int               `json:"code"`
	Conflict map[string]string `json:"conflict"`
}

func TestStorageConcurrentSetsOneWins(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("st", "race", barrierSetCode, nil)
	var wg sync.WaitGroup
	out := map[string]setOutcome{}
	var mu sync.Mutex
	for _, who := range []string{"alice", "bob"} {
		wg.Add(1)
		go func(who string) {
			defer wg.Done()
			r := env.Call("GET", "/api/run/st/race?who="+who, "", nil)
			var o setOutcome
			if r.Status != 200 || json.Unmarshal(r.Body, &o) != nil {
				t.Errorf("%s: %d %s", who, r.Status, r.Body)
				return
			}
			mu.Lock()
			out[who] = o
			mu.Unlock()
		}(who)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var winner, loser string
	switch {
	case out["alice"].Won && !out["bob"].Won:
		winner, loser = "alice", "bob"
	case out["bob"].Won && !out["alice"].Won:
		winner, loser = "bob", "alice"
	default:
		t.Fatalf("want exactly one winner: %+v", out)
	}
	if l := out[loser]; l.Code != 409 || l.Conflict["winner"] != winner {
		t.Fatalf("loser %s got %+v, want 409 with the winner's document", loser, l)
	}
	r := env.Call("GET", "/api/webtask/st/race/data", env.Master, nil)
	MustStatus(t, r, 200, "GET data")
	var d struct {
		Data string `json:"data"`
		Etag int64  `json:"etag"`
	}
	r.JSON(t, &d)
	if d.Data != `{"winner":"`+winner+`"}` || d.Etag != 1 {
		t.Fatalf("stored %+v, want the winner's document at etag 1", d)
	}
}

const putBigCode = `module.exports = function (ctx, cb) {
  var kb = Number(ctx.query.kb);
  ctx.storage.set({ pad: 'x'.repeat(kb * 1024 - 10) }, { force: 1 }, function (err) {
    if (err) return cb(null, { code: err.code, message: err.message });
    cb(null, { ok: true });
  });
};`

func TestStorageTooLargeAndRestart(t *testing.T) {
	RequireRoot(t)
	cfg := Config(t)
	env := Start(t, cfg)
	env.PutWebtask("st", "big", putBigCode, nil)
	r := env.Call("GET", "/api/run/st/big?kb=501", "", nil)
	MustStatus(t, r, 200, "501 KB set")
	if !strings.Contains(string(r.Body), `"code":413`) {
		t.Fatalf("501 KB set answered %s, want err.code 413", r.Body)
	}
	r = env.Call("GET", "/api/run/st/big?kb=499", "", nil)
	if r.Status != 200 || string(r.Body) != `{"ok":true}` {
		t.Fatalf("499 KB set: %d %s", r.Status, r.Body)
	}
	// The daemon enforces the cap too (the HTTP route has no runtime check).
	big := `"` + strings.Repeat("y", 501*1024) + `"`
	r = env.Call("PUT", "/api/webtask/st/big/data", env.Master, map[string]any{"data": big})
	MustStatus(t, r, 413, "501 KB PUT /data")

	env.PutWebtask("st", "counter", `module.exports = function (ctx, cb) {
	  ctx.storage.get(function (err, d) {
	    if (err) return cb(err);
	    var n = ((d && d.n) || 0) + 1;
	    ctx.storage.set({ n: n }, function (err) { cb(err, { n: n }); });
	  });
	};`, nil)
	for i := 1; i <= 2; i++ {
		r = env.Call("GET", "/api/run/st/counter", "", nil)
		if r.Status != 200 || string(r.Body) != `{"n":`+string(rune('0'+i))+`}` {
			t.Fatalf("call %d: %d %s", i, r.Status, r.Body)
		}
	}
	env.Stop()
	env = Start(t, cfg)
	r = env.Call("GET", "/api/run/st/counter", "", nil)
	if r.Status != 200 || string(r.Body) != `{"n":3}` {
		t.Fatalf("after restart: %d %s, want n 3", r.Status, r.Body)
	}
}

type dataBody struct {
	Data string `json:"data"`
	Etag *int64 `json:"etag"`
}

func TestStorageDataRoutes(t *testing.T) {
	RequireRoot(t)
	env := Start(t, Config(t))
	env.PutWebtask("st", "doc", `module.exports = function (ctx, cb) {
	  ctx.storage.get(function (err, d) { cb(err, { seen: d === undefined ? 'nothing' : d }); });
	};`, nil)
	path := "/api/webtask/st/doc/data"
	get := func() dataBody {
		t.Helper()
		r := env.Call("GET", path, env.Master, nil)
		MustStatus(t, r, 200, "GET data")
		var d dataBody
		r.JSON(t, &d)
		return d
	}
	put := func(body any, want int) dataBody {
		t.Helper()
		r := env.Call("PUT", path, env.Master, body)
		MustStatus(t, r, want, "PUT data")
		var d dataBody
		if want == 200 {
			r.JSON(t, &d)
		}
		return d
	}
	if d := get(); d.Data != "{}" || d.Etag != nil {
		t.Fatalf("empty storage = %+v, want data {} and etag null", d)
	}
	if d := put(map[string]any{"data": `{"v":1}`, "etag": nil}, 200); d.Etag == nil || *d.Etag != 1 {
		t.Fatalf("PUT expecting nothing = %+v", d)
	}
	put(map[string]any{"data": `{"v":2}`, "etag": nil}, 409)
	put(map[string]any{"data": `{"v":2}`, "etag": "7"}, 409)
	if d := put(map[string]any{"data": `{"v":2}`, "etag": "1"}, 200); *d.Etag != 2 {
		t.Fatalf("PUT with the current etag (string) = %+v", d)
	}
	if d := put(map[string]any{"data": `{"v":3}`, "etag": 2}, 200); *d.Etag != 3 {
		t.Fatalf("PUT with the current etag (number) = %+v", d)
	}
	if d := put(map[string]any{"data": `{"v":4}`}, 200); *d.Etag != 4 {
		t.Fatalf("PUT without etag (force) = %+v", d)
	}
	if d := get(); d.Data != `{"v":4}` || *d.Etag != 4 {
		t.Fatalf("GET = %+v", d)
	}
	// The runtime sees what the API wrote.
	r := env.Call("GET", "/api/run/st/doc", "", nil)
	if r.Status != 200 || string(r.Body) != `{"seen":{"v":4}}` {
		t.Fatalf("runtime get: %d %s", r.Status, r.Body)
	}
	// Bad input changes nothing.
	put(map[string]any{"data": `{"v":`}, 400)
	put(map[string]any{"etag": 4}, 400)
	put(map[string]any{"data": `{}`, "etag": "x"}, 400)
	put(map[string]any{"data": `{}`, "etag": 4, "extra": 1}, 400)
	if d := get(); d.Data != `{"v":4}` || *d.Etag != 4 {
		t.Fatalf("bad PUTs changed the data: %+v", d)
	}
	// Auth: a token of another container is refused; the container's own works.
	other := issueTenant(t, env, "elsewhere")
	r = env.Call("GET", path, other, nil)
	MustStatus(t, r, 403, "GET data with a foreign token")
	r = env.Call("PUT", path, other, map[string]any{"data": `{}`})
	MustStatus(t, r, 403, "PUT data with a foreign token")
	r = env.Call("GET", path, "", nil)
	MustStatus(t, r, 403, "GET data without a token")
	own := issueTenant(t, env, "st")
	r = env.Call("GET", path, own, nil)
	MustStatus(t, r, 200, "GET data with the container's token")
	r = env.Call("GET", "/api/webtask/st/missing/data", env.Master, nil)
	MustStatus(t, r, 404, "GET data of a missing webtask")

	// Deleting the webtask deletes its data.
	r = env.Call("DELETE", "/api/webtask/st/doc", env.Master, nil)
	if r.Status != 204 && r.Status != 200 {
		t.Fatalf("DELETE webtask: %d %s", r.Status, r.Body)
	}
	r = env.Call("GET", path, env.Master, nil)
	MustStatus(t, r, 404, "GET data of a deleted webtask")
	env.PutWebtask("st", "doc", `module.exports = function (cb) { cb(); };`, nil)
	if d := get(); d.Data != "{}" || d.Etag != nil {
		t.Fatalf("re-created webtask sees old data: %+v", d)
	}
}

// issueTenant issues a token for container with the master token.
func issueTenant(t *testing.T, env *Env, container string) string {
	t.Helper()
	r := env.Call("POST", "/api/tokens/issue", env.Master, map[string]any{"ten": container})
	MustStatus(t, r, 200, "issue tenant token")
	return strings.TrimSpace(string(r.Body))
}

package agent_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

// memStorage is an in-memory StorageHandler with the daemon's semantics
// (etag counter, compare-and-set, force, clear by "null").
type memStorage struct {
	mu   sync.Mutex
	docs map[string]string
	tags map[string]int64
	ops  []agent.StorageOp
	// afterGet, when set, runs after every get (a concurrent writer).
	afterGet func(m *memStorage, key string)
}

func newMemStorage() *memStorage {
	return &memStorage{docs: map[string]string{}, tags: map[string]int64{}}
}

func (m *memStorage) handle(ctx context.Context, op agent.StorageOp) agent.StorageResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ops = append(m.ops, op)
	if op.Name == "" {
		return agent.StorageResult{Code: 400, Message: "storage is only available to named webtasks"}
	}
	key := op.Container + "/" + op.Name
	if !op.Set {
		res := agent.StorageResult{Doc: m.docs[key], Etag: m.tags[key]}
		if m.afterGet != nil {
			m.afterGet(m, key)
		}
		return res
	}
	if !op.Force && op.Etag != m.tags[key] {
		return agent.StorageResult{Code: 409, Message: "conflict", Doc: m.docs[key], Etag: m.tags[key]}
	}
	m.tags[key]++
	if op.Doc == "null" {
		delete(m.docs, key)
	} else {
		m.docs[key] = op.Doc
	}
	return agent.StorageResult{Etag: m.tags[key]}
}

func (m *memStorage) snapshotOps() []agent.StorageOp {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]agent.StorageOp(nil), m.ops...)
}

func startStorageAgent(t *testing.T, m *memStorage) *harness {
	t.Helper()
	return startAgentWith(t, nil, agent.WithStorage(m.handle, 5*time.Second))
}

func decode(t *testing.T, resp *agent.Response, v any) {
	t.Helper()
	if err := json.Unmarshal(resp.Body, v); err != nil {
		t.Fatalf("body %q: %v", resp.Body, err)
	}
}

const counterCode = `module.exports = function (ctx, cb) {
  ctx.storage.get(function (err, data) {
    if (err) return cb(err);
    console.log('got ' + JSON.stringify(data === undefined ? null : data));
    var n = ((data && data.n) || 0) + 1;
    ctx.storage.set({ n: n }, function (err) { cb(err, { n: n, empty: data === undefined }); });
  });
};`

func TestStorageGetSetCounter(t *testing.T) {
	m := newMemStorage()
	h := startStorageAgent(t, m)
	for i := 1; i <= 3; i++ {
		r := newReq(counterCode)
		r.ReqID = "req-" + string(rune('0'+i))
		resp := h.do(t, r)
		var got struct {
			N     int  `json:"n"`
			Empty bool `json:"empty"`
		}
		decode(t, resp, &got)
		if resp.Status != 200 || got.N != i || got.Empty != (i == 1) {
			t.Fatalf("call %d: %d %s", i, resp.Status, resp.Body)
		}
	}
	if m.docs["c/n"] != `{"n":3}` || m.tags["c/n"] != 3 {
		t.Fatalf("stored %q etag %d", m.docs["c/n"], m.tags["c/n"])
	}
	ops := m.snapshotOps()
	if len(ops) != 6 {
		t.Fatalf("%d storage ops, want 6", len(ops))
	}
	// Identity and etags come from the invocation: get, then set with the
	// etag that get returned.
	if ops[0].Container != "c" || ops[0].Name != "n" || ops[0].ReqID != "req-1" || ops[0].Set {
		t.Fatalf("first op %+v", ops[0])
	}
	if !ops[3].Set || ops[3].Etag != 1 || ops[3].Force || ops[3].Doc != `{"n":2}` {
		t.Fatalf("second set %+v", ops[3])
	}
	// Output inside storage callbacks is attributed to its invocation.
	var sawGot bool
	for _, l := range h.snapshotLogs() {
		if l.Msg == `got {"n":1}` {
			sawGot = true
			if l.ReqID != "req-2" || l.ID == 0 {
				t.Fatalf("log in a storage callback attributed to %q/%d", l.ReqID, l.ID)
			}
		}
	}
	if !sawGot {
		t.Fatalf("log line from a storage callback missing: %+v", h.snapshotLogs())
	}
}

func TestStorageSemantics(t *testing.T) {
	m := newMemStorage()
	h := startStorageAgent(t, m)
	type result = map[string]any
	run := func(t *testing.T, code string, tweak func(*agent.Request)) (int, result) {
		t.Helper()
		r := newReq(code)
		if tweak != nil {
			tweak(r)
		}
		resp := h.do(t, r)
		var v result
		decode(t, resp, &v)
		return resp.Status, v
	}

	t.Run("conflict carries the current document, then set again wins", func(t *testing.T) {
		m.mu.Lock()
		m.docs["c/n"], m.tags["c/n"] = `{"v":"old"}`, 4
		m.afterGet = func(m *memStorage, key string) { // another writer slips in
			m.docs[key], m.tags[key] = `{"v":"theirs"}`, m.tags[key]+1
			m.afterGet = nil
		}
		m.mu.Unlock()
		st, v := run(t, `module.exports = function (ctx, cb) {
		  ctx.storage.get(function (err, data) {
		    ctx.storage.set({ v: 'mine' }, function (err) {
		      if (!err) return cb(null, { first: 'won' });
		      var first = { code: err.code, conflict: err.conflict, message: err.message };
		      ctx.storage.set({ v: 'merged ' + err.conflict.v }, function (err2) {
		        cb(null, { read: data, first: first, second: err2 ? err2.code : 'ok' });
		      });
		    });
		  });
		};`, nil)
		want := result{
			"read":   result{"v": "old"},
			"first":  result{"code": 409.0, "conflict": result{"v": "theirs"}, "message": "conflict"},
			"second": "ok",
		}
		if st != 200 || !reflect.DeepEqual(v, want) {
			t.Fatalf("%d %v, want %v", st, v, want)
		}
		if m.docs["c/n"] != `{"v":"merged theirs"}` {
			t.Fatalf("stored %q", m.docs["c/n"])
		}
	})

	t.Run("force without get; null clears", func(t *testing.T) {
		st, v := run(t, `module.exports = function (ctx, cb) {
		  ctx.storage.set({ forced: true }, { force: 1 }, function (err) {
		    if (err) return cb(err);
		    ctx.storage.get(function (err, d1) {
		      ctx.storage.set(null, function (err) {
		        if (err) return cb(err);
		        ctx.storage.get(function (err, d2) { cb(null, { d1: d1, cleared: d2 === undefined }); });
		      });
		    });
		  });
		};`, nil)
		if st != 200 || !reflect.DeepEqual(v, result{"d1": result{"forced": true}, "cleared": true}) {
			t.Fatalf("%d %v", st, v)
		}
	})

	t.Run("set before get throws like the local runtime", func(t *testing.T) {
		st, v := run(t, `module.exports = function (ctx, cb) { ctx.storage.set({ a: 1 }, cb); };`, nil)
		if st != 500 || !strings.Contains(v["details"].(string), "before storage.get") {
			t.Fatalf("%d %v", st, v)
		}
	})

	t.Run("too large is 413 in the runtime", func(t *testing.T) {
		before := len(m.snapshotOps())
		st, v := run(t, `module.exports = function (ctx, cb) {
		  ctx.storage.set({ big: 'x'.repeat(501 * 1024) }, { force: 1 }, function (err) {
		    cb(null, { code: err && err.code });
		  });
		};`, nil)
		if st != 200 || v["code"] != 413.0 {
			t.Fatalf("%d %v", st, v)
		}
		if n := len(m.snapshotOps()); n != before {
			t.Fatalf("an oversized set reached the daemon (%d ops)", n-before)
		}
	})

	t.Run("unnamed code has no storage", func(t *testing.T) {
		st, v := run(t, `module.exports = function (ctx, cb) {
		  ctx.storage.get(function (err) { cb(null, { code: err && err.code, message: err && err.message }); });
		};`, func(r *agent.Request) { r.Name = "" })
		if st != 200 || v["code"] != 400.0 || v["message"] != "storage is only available to named webtasks" {
			t.Fatalf("%d %v", st, v)
		}
	})

	t.Run("module.webtask.storage is ctx.storage", func(t *testing.T) {
		st, v := run(t, `module.exports = function (ctx, cb) {
		  cb(null, { same: module.webtask.storage === ctx.storage });
		};`, nil)
		if st != 200 || v["same"] != true {
			t.Fatalf("%d %v", st, v)
		}
	})

	t.Run("3-arity handlers have storage too", func(t *testing.T) {
		resp := h.do(t, newReq(`module.exports = function (ctx, req, res) {
		  ctx.storage.get(function (err, d) {
		    res.writeHead(200, { 'content-type': 'application/json' });
		    res.end(JSON.stringify({ err: err ? err.message : null, cleared: d === undefined }));
		  });
		};`))
		if resp.Status != 200 || string(resp.Body) != `{"err":null,"cleared":true}` {
			t.Fatalf("%d %s", resp.Status, resp.Body)
		}
	})
}

func TestStorageWithoutHandlerIs503(t *testing.T) {
	h := startAgent(t)
	resp := h.do(t, newReq(`module.exports = function (ctx, cb) {
	  ctx.storage.get(function (err) { cb(null, { code: err && err.code }); });
	};`))
	if resp.Status != 200 || string(resp.Body) != `{"code":503}` {
		t.Fatalf("%d %s", resp.Status, resp.Body)
	}
}

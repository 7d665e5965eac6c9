package api

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/store"
)

// levelLog records the level and message of every log record.
type levelLog struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *levelLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *levelLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r)
	return nil
}
func (l *levelLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *levelLog) WithGroup(string) slog.Handler      { return l }

// count returns how many records are at min or above.
func (l *levelLog) count(min slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.records {
		if r.Level >= min {
			n++
		}
	}
	return n
}

// rawExchange writes req on a fresh connection to srv, half-closes it, and
// reads the answer (bounded).
func rawExchange(t *testing.T, srv *httptest.Server, req string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp
}

// A client's malformed or cut-short body is its own failure: a JSON 400,
// logged at debug, never an ERROR 500.
func TestUnreadableBodyIsAClientError(t *testing.T) {
	e := newEnv(t, Config{MaxBodyBytes: 1 << 20})
	logs := &levelLog{}
	e.srv.log = slog.New(logs)
	srv := httptest.NewServer(e.h)
	defer srv.Close()
	head := "POST /api/tokens/issue HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + e.master + "\r\nContent-Type: application/json\r\n"
	for name, req := range map[string]string{
		"malformed chunk size": head + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
		"chunk cut short":      head + "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"ten\"",
		"aborted upload":       head + "Content-Length: 1000\r\n\r\n{\"ten\": \"test\"",
	} {
		t.Run(name, func(t *testing.T) {
			before := logs.count(slog.LevelDebug)
			resp := rawExchange(t, srv, req)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("answer %d %q, want a JSON 400", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if logs.count(slog.LevelDebug) == before {
				t.Error("the failed read was not logged at debug")
			}
			if n := logs.count(slog.LevelWarn); n != 0 {
				t.Errorf("%d records at WARN or above", n)
			}
		})
	}
}

// noSpaceStore is a store whose disk is full: every write is refused.
type noSpaceStore struct{ *fakeStore }

func (noSpaceStore) PutWebtask(context.Context, *store.Webtask) (*store.Webtask, error) {
	return nil, errdefs.New(errdefs.ErrNoSpace, "the daemon's storage is full")
}

// A full disk is a JSON 507 with the store's message, logged at debug only
// (the store logs the condition itself, once).
func TestFullStoreIs507LoggedAtDebug(t *testing.T) {
	logs := &levelLog{}
	e := buildEnv(t, envOptions{deps: func(e *env, d *Deps) {
		d.Store = noSpaceStore{e.fstore}
		d.Logger = slog.New(logs)
	}})
	w := e.do("PUT", "/api/webtask/test/x", e.master, `{"code":"module.exports = cb => cb()"}`)
	wantError(t, w, http.StatusInsufficientStorage, "the daemon's storage is full")
	if n := logs.count(slog.LevelWarn); n != 0 {
		t.Fatalf("%d records at WARN or above for a 507", n)
	}
}

package api

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/webtaskd/webtaskd/sandbox"
)

// scriptedBody is a streamed body the test feeds piece by piece.
type scriptedBody struct {
	pieces chan []byte
	end    chan error // io.EOF or why the stream is cut off
	closed chan struct{}
}

func newScriptedBody() *scriptedBody {
	return &scriptedBody{pieces: make(chan []byte), end: make(chan error, 1), closed: make(chan struct{})}
}

func (b *scriptedBody) Read(p []byte) (int, error) {
	select {
	case piece := <-b.pieces:
		return copy(p, piece), nil
	case err := <-b.end:
		return 0, err
	case <-b.closed:
		return 0, errors.New("closed")
	}
}

func (b *scriptedBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func (b *scriptedBody) send(t *testing.T, s string) {
	t.Helper()
	select {
	case b.pieces <- []byte(s):
	case <-time.After(10 * time.Second):
		t.Fatal("the API did not read the next piece")
	}
}

// streamEnv serves a named webtask whose response is the scripted body.
func streamEnv(t *testing.T, header map[string][]string) (*httptest.Server, *scriptedBody) {
	t.Helper()
	e := newEnv(t, Config{})
	if w := e.do("POST", "/api/tokens/issue", e.tenant, wtCreateBody); w.Code != 200 {
		t.Fatalf("issue: %d %s", w.Code, w.Body)
	}
	body := newScriptedBody()
	e.runner.call = &sandbox.Call{Status: 200, Header: header, Body: body, Streamed: true}
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return srv, body
}

func TestRunStreamsPiecesAsTheyCome(t *testing.T) {
	srv, body := streamEnv(t, map[string][]string{"content-type": {"text/plain"}})
	client := &http.Client{Timeout: 10 * time.Second}
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := client.Get(srv.URL + "/api/run/test/hello")
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	body.send(t, "one\n")
	resp := <-done
	if resp == nil {
		t.FailNow()
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	// The first piece arrives while the body is still open: flushed.
	if l, err := br.ReadString('\n'); err != nil || l != "one\n" {
		t.Fatalf("first piece %q %v", l, err)
	}
	body.send(t, "two")
	body.end <- io.EOF
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "two" || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("rest %q %v %v", rest, err, resp.TransferEncoding)
	}
}

func TestRunCutOffStreamDropsTheConnection(t *testing.T) {
	srv, body := streamEnv(t, map[string][]string{"content-length": {"100"}})
	go func() {
		body.pieces <- []byte("partial") // read by the API (the test's deadline bounds it)
		body.end <- errors.New("over the budget")
	}()
	resp, err := http.Get(srv.URL + "/api/run/test/hello")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != 100 {
		t.Fatalf("content-length %d, want the webtask's 100", resp.ContentLength)
	}
	b, err := io.ReadAll(resp.Body)
	if err == nil || string(b) != "partial" {
		t.Fatalf("read %q, %v; want the piece, then an error (no clean end)", b, err)
	}
}

func TestRunCallerGoneClosesTheBody(t *testing.T) {
	srv, body := streamEnv(t, nil)
	go func() { body.pieces <- []byte("x") }()
	resp, err := http.Get(srv.URL + "/api/run/test/hello")
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// The API notices on its next write; keep offering pieces until the
	// body is closed (bounded).
	deadline := time.After(10 * time.Second)
	for {
		select {
		case <-body.closed:
			return
		case body.pieces <- []byte("more"):
		case <-deadline:
			t.Fatal("the streamed body was not closed after the caller went away")
		}
	}
}

// pendingPieces is a streamed body whose pieces are all there: Pending
// is true until it has been read to its end.
type pendingPieces struct{ pieces []string }

func (b *pendingPieces) Read(p []byte) (int, error) {
	if len(b.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.pieces[0])
	b.pieces = b.pieces[1:]
	return n, nil
}

func (b *pendingPieces) Pending() bool { return true }

// flushCounter is a ResponseWriter that counts flushes.
type flushCounter struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushCounter) Flush() { f.flushes++; f.ResponseRecorder.Flush() }

// Pieces that are there together go to the caller together: no flush
// between them (net/http writes them, and the end, when the handler
// returns); a piece the next Read would wait after is flushed at once.
func TestRunStreamFlushesOnlyBeforeAWait(t *testing.T) {
	e := newEnv(t, Config{})
	streamOnce := func(body io.Reader) *flushCounter {
		w := &flushCounter{ResponseRecorder: httptest.NewRecorder()}
		c := echo.New().NewContext(httptest.NewRequest("GET", "/", nil), w)
		if err := e.srv.stream(c, "req", body); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := streamOnce(&pendingPieces{pieces: []string{"one;", "two;", "three"}})
	if got := w.Body.String(); got != "one;two;three" || w.flushes != 0 {
		t.Fatalf("body %q with %d flushes; want every piece, no flush (all were there)", got, w.flushes)
	}
	// A body without Pending (or whose next Read would wait): every piece
	// is flushed.
	w = streamOnce(io.MultiReader(strings.NewReader("one;"), strings.NewReader("two;")))
	if got := w.Body.String(); got != "one;two;" || w.flushes != 2 {
		t.Fatalf("body %q with %d flushes; want a flush per piece", got, w.flushes)
	}
}

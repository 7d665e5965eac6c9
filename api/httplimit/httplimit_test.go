package httplimit

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

func TestClientAddr(t *testing.T) {
	proxies, err := ParsePrefixes("10.0.0.0/8, 192.0.2.7")
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.TrustedProxies = proxies
	for _, tc := range []struct {
		peer, xff, want string
	}{
		{"198.51.100.1:1234", "", "198.51.100.1"},
		{"198.51.100.1:1234", "203.0.113.9", "198.51.100.1"}, // untrusted peer: its header is not believed
		{"10.1.2.3:1234", "203.0.113.9", "203.0.113.9"},
		{"10.1.2.3:1234", "1.1.1.1, 203.0.113.9, 10.9.9.9", "203.0.113.9"}, // right-most untrusted hop
		{"192.0.2.7:1234", "", "192.0.2.7"},
		{"10.1.2.3:1234", "junk, 203.0.113.9", "203.0.113.9"},
		{"10.1.2.3:1234", "203.0.113.9, junk", "10.1.2.3"},
		{"[::ffff:10.1.2.3]:1234", "203.0.113.9", "203.0.113.9"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.peer
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := c.ClientAddr(r); got != netip.MustParseAddr(tc.want) {
			t.Errorf("peer %s xff %q: got %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
	if _, err := ParsePrefixes("10.0.0.0/33"); err == nil {
		t.Error("a bad prefix parsed")
	}
}

func TestAdmitPerForwardedClient(t *testing.T) {
	c := DefaultConfig()
	c.MaxConnsPerIP = 2
	c.TrustedProxies, _ = ParsePrefixes("10.0.0.1")
	g := New(c, slog.Default())
	req := func(xff string) *http.Request {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "10.0.0.1:5555"
		r.Header.Set("X-Forwarded-For", xff)
		return r
	}
	r1, ok1 := g.Admit(req("203.0.113.1"))
	_, ok2 := g.Admit(req("203.0.113.1"))
	_, ok3 := g.Admit(req("203.0.113.1"))
	_, okOther := g.Admit(req("203.0.113.2"))
	if !ok1 || !ok2 || ok3 || !okOther {
		t.Fatalf("admitted %v %v %v (third must be refused), other client %v", ok1, ok2, ok3, okOther)
	}
	r1()
	if _, ok := g.Admit(req("203.0.113.1")); !ok {
		t.Fatal("a released place was not given back")
	}
}

func TestListenerCapsPerAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.MaxConnsPerIP = 2
	l := New(c, slog.Default()).Listener(ln)
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- conn
		}
	}()
	dial := func(src string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
		conn, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	next := func(what string) net.Conn {
		select {
		case conn := <-accepted:
			return conn
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not accepted", what)
			return nil
		}
	}
	dial("127.0.0.1")
	a := next("first")
	dial("127.0.0.1")
	next("second")
	third := dial("127.0.0.1")
	// The third is closed by the listener: the client reads EOF.
	_ = third.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := third.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("third connection from one address: read %v, want EOF", err)
	}
	dial("127.0.0.2")
	next("other address")
	a.Close()
	dial("127.0.0.1")
	next("after a close")
}

func TestReadBody(t *testing.T) {
	c := DefaultConfig()
	c.MaxInflightBodyBytes = 64 << 10
	g := New(c, slog.Default())
	body := func(s string, cl int64) *http.Request {
		r := httptest.NewRequest("POST", "/", strings.NewReader(s))
		r.ContentLength = cl
		return r
	}
	acct := g.NewBody()
	b, err := ReadBody(body("hello", 5), 1024, acct)
	if err != nil || string(b) != "hello" {
		t.Fatalf("got %q, %v", b, err)
	}
	acct.Release()
	if _, err := ReadBody(body("x", 4096), 1024, g.NewBody()); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("announced too large: %v", err)
	}
	acct = g.NewBody()
	if _, err := ReadBody(body(strings.Repeat("x", 2000), -1), 1024, acct); !errors.Is(err, errdefs.ErrTooLarge) {
		t.Fatalf("sent too large: %v", err)
	}
	acct.Release()
	// A budget spent by others refuses.
	hog := g.NewBody()
	big := bytes.Repeat([]byte("y"), 60<<10)
	if _, err := ReadBody(body(string(big), -1), 1<<20, hog); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBody(body(string(big), -1), 1<<20, g.NewBody()); !errors.Is(err, ErrBusy) {
		t.Fatalf("over budget: %v", err)
	}
	hog.Release()
	if _, err := ReadBody(body(string(big), -1), 1<<20, g.NewBody()); err != nil {
		t.Fatalf("after release: %v", err)
	}
	// A body cut short is ErrUnreadable (400), not an internal error.
	r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader("ab"), errReader{}))
	if _, err := ReadBody(r, 1024, New(DefaultConfig(), nil).NewBody()); !errors.Is(err, ErrUnreadable) || !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("aborted body: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

package httplimit

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"golang.org/x/net/netutil"
)

// Listener wraps ln with the connection caps of c: at most MaxConns open
// connections (netutil.LimitListener: more wait in the accept queue) and
// at most MaxConnsPerIP per source address, trusted proxies excepted (a
// connection past it is closed at once, logged at debug). Closing a
// returned connection releases its place.
func (g *Guard) Listener(ln net.Listener) net.Listener {
	c := &g.cfg
	if c.MaxConns > 0 {
		ln = netutil.LimitListener(ln, c.MaxConns)
	}
	if c.MaxConnsPerIP <= 0 {
		return ln
	}
	return &perIPListener{Listener: ln, cfg: c, log: g.log, open: make(map[netip.Addr]int)}
}

type perIPListener struct {
	net.Listener
	cfg *Config
	log *slog.Logger

	mu   sync.Mutex
	open map[netip.Addr]int
}

func (l *perIPListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
		if err != nil {
			return conn, nil // not TCP/IP: nothing to count by
		}
		addr := ap.Addr().Unmap()
		if l.cfg.trusted(addr) {
			return conn, nil
		}
		l.mu.Lock()
		n := l.open[addr]
		if n >= l.cfg.MaxConnsPerIP {
			l.mu.Unlock()
			l.log.Debug("connection refused: too many connections from one address", "remote", addr.String(), "max", l.cfg.MaxConnsPerIP)
			_ = conn.Close()
			continue
		}
		l.open[addr] = n + 1
		l.mu.Unlock()
		return &countedConn{Conn: conn, release: func() { l.release(addr) }}, nil
	}
}

func (l *perIPListener) release(addr netip.Addr) {
	l.mu.Lock()
	if n := l.open[addr]; n <= 1 {
		delete(l.open, addr)
	} else {
		l.open[addr] = n - 1
	}
	l.mu.Unlock()
}

// countedConn releases its per-address place once, on the first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

package httplimit

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr is the address of the client that sent r: the connection's
// peer, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy itself (the left part of
// the header is the client's to write and is not believed). The zero Addr
// when the peer is not an IP address.
func (c *Config) ClientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !c.trusted(addr) {
		return addr
	}
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		items := strings.Split(hops[i], ",")
		for j := len(items) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(items[j]))
			if err != nil {
				return addr // a malformed hop: stop at the last proxy we trust
			}
			a = a.Unmap()
			if !c.trusted(a) {
				return a
			}
			addr = a
		}
	}
	return addr
}

// Admit counts a request that came through a trusted proxy against
// MaxConnsPerIP of its client (ClientAddr) while it is in flight: ok is
// false when the client has that many already. Requests from other peers
// are bounded per connection by Listener and always admitted. Call
// release when the request ends.
func (g *Guard) Admit(r *http.Request) (release func(), ok bool) {
	if g.cfg.MaxConnsPerIP <= 0 || len(g.cfg.TrustedProxies) == 0 {
		return noop, true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !g.cfg.trusted(ap.Addr().Unmap()) {
		return noop, true
	}
	client := g.cfg.ClientAddr(r)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inflight[client] >= g.cfg.MaxConnsPerIP {
		g.log.Debug("request refused: too many requests in flight from one client", "client", client.String(), "max", g.cfg.MaxConnsPerIP)
		return noop, false
	}
	g.inflight[client]++
	return func() {
		g.mu.Lock()
		if g.inflight[client] <= 1 {
			delete(g.inflight, client)
		} else {
			g.inflight[client]--
		}
		g.mu.Unlock()
	}, true
}

func noop() {}

// Server returns the http.Server of h with the configured timeouts. Go's
// server answers malformed requests itself (plain-text 400/431) without
// logging them; what it does log (accept errors, ...) is a warning.
func (g *Guard) Server(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: g.cfg.ReadHeaderTimeout,
		ReadTimeout:       g.cfg.ReadTimeout,
		IdleTimeout:       g.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
	}
}

package api

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// ErrPrivateAddress: remote webtask code was to be fetched from a loopback,
// private, link-local or other special-purpose address (special_addr.go),
// which tenants must not reach through the daemon
// (Config.AllowPrivateCodeURLs allows it).
var ErrPrivateAddress = errdefs.New(errdefs.ErrInvalid,
	"the webtask code url points to a loopback, private, link-local or other special-purpose address, which is not allowed")

// remoteCodeClient returns the HTTP client that fetches remote code. Unless
// allowPrivate, it refuses to connect to non-public addresses; the check
// runs on the address actually dialed (after DNS, on every redirect), so a
// name that resolves to 127.0.0.1 is refused too. It uses no proxy.
func remoteCodeClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: remoteFetchTimeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, address)
			}
			if !publicAddr(ap.Addr()) {
				return fmt.Errorf("%w: %s", ErrPrivateAddress, ap.Addr())
			}
			return nil
		}
	}
	return &http.Client{
		Timeout: remoteFetchTimeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			TLSHandshakeTimeout: remoteFetchTimeout,
			MaxIdleConns:        16,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

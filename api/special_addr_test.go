package api

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		// Public unicast.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.216.34", true},
		{"100.63.255.255", true}, // just below CGNAT
		{"100.128.0.0", true},    // just above CGNAT
		{"198.17.255.255", true}, // just below benchmarking
		{"198.20.0.0", true},     // just above benchmarking
		{"223.255.255.255", true},
		{"2001:4860:4860::8888", true},
		{"2606:4700:4700::1111", true},
		{"2001:200::1", true}, // just above 2001::/23
		{"::ffff:8.8.8.8", true},
		{"::8.8.8.8", true},

		// IPv4 special-purpose.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"10.255.255.255", false},
		{"100.64.0.1", false},
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false},
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.1", false},
		{"192.0.0.9", false},
		{"192.0.0.170", false},
		{"192.0.2.1", false},
		{"192.31.196.1", false},
		{"192.52.193.1", false},
		{"192.88.99.1", false},
		{"192.168.1.1", false},
		{"192.175.48.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},

		// IPv6 special-purpose.
		{"::", false},
		{"::1", false},
		{"::ffff:127.0.0.1", false},
		{"::ffff:10.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:192.0.2.1", false},
		{"::127.0.0.1", false}, // IPv4-compatible
		{"::10.1.2.3", false},
		{"::ffff:0:127.0.0.1", false}, // SIIT translated form, outside 2000::/3
		{"64:ff9b::808:808", false},   // NAT64, even of 8.8.8.8
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::808:808", false}, // local-use NAT64
		{"100::1", false},             // discard
		{"100:0:0:1::1", false},       // dummy prefix
		{"2001::1", false},            // Teredo
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
		{"2001:1::1", false},  // PCP anycast
		{"2001:2::1", false},  // benchmarking
		{"2001:10::1", false}, // ORCHID
		{"2001:20::1", false}, // ORCHIDv2
		{"2001:db8::1", false},
		{"2001:db8:ffff::1", false},
		{"2002:7f00:1::1", false}, // 6to4 of 127.0.0.1
		{"2002:808:808::1", false},
		{"2620:4f:8000::1", false},
		{"3fff::1", false},
		{"5f00::1", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fe80::1", false},
		{"febf::1", false},
		{"fec0::1", false}, // deprecated site-local
		{"ff02::1", false},
		{"ff0e::1", false},
		{"4000::1", false}, // unallocated
		{"fe80::1%eth0", false},
	} {
		a, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		if got := publicAddr(a); got != tc.public {
			t.Errorf("publicAddr(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
	if publicAddr(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

// TestRemoteCodeClientRefusesEmbeddedLoopback dials a loopback server under
// an IPv4-mapped spelling: the check runs on the address actually dialed.
func TestRemoteCodeClientRefusesEmbeddedLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the loopback server was reached")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	for _, host := range []string{"127.0.0.1", "[::ffff:127.0.0.1]", "localhost"} {
		resp, err := remoteCodeClient(false).Get("http://" + host + ":" + port + "/x.js")
		if err == nil {
			resp.Body.Close()
			t.Fatalf("%s: fetched (%d)", host, resp.StatusCode)
		}
		if !errors.Is(err, ErrPrivateAddress) {
			t.Fatalf("%s: err = %v, want ErrPrivateAddress", host, err)
		}
	}
	// The positive control: allowed, the same client reaches it.
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	resp, err := remoteCodeClient(true).Get(ok.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

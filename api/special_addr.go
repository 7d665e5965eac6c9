package api

import "net/netip"

// The addresses remote webtask code may not be fetched from: every block of
// the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
// its updates), whether or not the registry calls it globally reachable, and
// for IPv6 everything outside 2000::/3 (the only space allocated for global
// unicast). The IPv4-mapped and IPv4-compatible forms, which reach (by the
// kernel's mapping or an automatic tunnel) the IPv4 address they carry, are
// judged by that address; NAT64,
// 6to4 and Teredo, whose gateways and relays reach IPv4 destinations on
// networks of their own, are refused outright.

// special4 are the IPv4 special-purpose blocks.
var special4 = prefixes(
	"0.0.0.0/8",          // "this network" (RFC 791)
	"10.0.0.0/8",         // private (RFC 1918)
	"100.64.0.0/10",      // shared address space, carrier-grade NAT (RFC 6598)
	"127.0.0.0/8",        // loopback (RFC 1122)
	"169.254.0.0/16",     // link-local, cloud metadata (RFC 3927)
	"172.16.0.0/12",      // private (RFC 1918)
	"192.0.0.0/24",       // IETF protocol assignments (RFC 6890), DS-Lite, NAT64 discovery
	"192.0.2.0/24",       // documentation TEST-NET-1 (RFC 5737)
	"192.31.196.0/24",    // AS112-v4 (RFC 7535)
	"192.52.193.0/24",    // AMT (RFC 7450)
	"192.88.99.0/24",     // deprecated 6to4 relay anycast (RFC 7526)
	"192.168.0.0/16",     // private (RFC 1918)
	"192.175.48.0/24",    // direct delegation AS112 service (RFC 7534)
	"198.18.0.0/15",      // benchmarking (RFC 2544)
	"198.51.100.0/24",    // documentation TEST-NET-2 (RFC 5737)
	"203.0.113.0/24",     // documentation TEST-NET-3 (RFC 5737)
	"224.0.0.0/4",        // multicast (RFC 5771)
	"240.0.0.0/4",        // reserved (RFC 1112)
	"255.255.255.255/32", // limited broadcast (RFC 919; inside 240/4, listed for the record)
)

// globalUnicast6 is the IPv6 space allocated for global unicast; anything
// outside it (::/8 but the embedded forms, 100::/8, fc00::/7, fe80::/10,
// ff00::/8, the unallocated rest) is refused.
var globalUnicast6 = netip.MustParsePrefix("2000::/3")

// special6 are the IPv6 special-purpose blocks inside 2000::/3.
var special6 = prefixes(
	"2001::/23",         // IETF protocol assignments: Teredo 2001::/32, benchmarking 2001:2::/48, ORCHID, AMT, AS112 (RFC 2928)
	"2001:db8::/32",     // documentation (RFC 3849)
	"2002::/16",         // 6to4 (RFC 3056): its relays reach any IPv4 address
	"2620:4f:8000::/48", // direct delegation AS112 service (RFC 7534)
	"3fff::/20",         // documentation (RFC 9637)
	"5f00::/16",         // SRv6 SIDs (RFC 9602)
)

// ipv4Compatible addresses are judged by their IPv4. Like NAT64
// (64:ff9b::/96, RFC 6052; 64:ff9b:1::/48, RFC 8215) they lie outside
// 2000::/3; NAT64 is refused by that rule.
var ipv4Compatible = netip.MustParsePrefix("::/96") // RFC 4291 (deprecated)

func prefixes(ss ...string) []netip.Prefix {
	ps := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		ps[i] = netip.MustParsePrefix(s)
	}
	return ps
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// embeddedV4 returns the IPv4 address that an IPv4-mapped or
// IPv4-compatible IPv6 address stands for.
func embeddedV4(a netip.Addr) (netip.Addr, bool) {
	if a.Is4In6() {
		return a.Unmap(), true
	}
	if ipv4Compatible.Contains(a) {
		b := a.As16()
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	}
	return netip.Addr{}, false
}

// publicAddr reports whether a is an address remote code may be fetched
// from: a public unicast address outside every special-purpose block.
func publicAddr(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.Is4() {
		return !inAny(a, special4)
	}
	if v4, ok := embeddedV4(a); ok {
		return !inAny(v4, special4)
	}
	return globalUnicast6.Contains(a) && !inAny(a, special6)
}

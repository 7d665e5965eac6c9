package daemon

import (
	"strings"
	"testing"
)

func TestParseCgroupV2(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"0::/system.slice/webtaskd.service\n", "/system.slice/webtaskd.service"},
		{"12:memory:/x\n1:name=systemd:/y\n0::/system.slice/webtaskd.service/supervisor\n", "/system.slice/webtaskd.service/supervisor"},
		{"0::/\n", "/"},
	} {
		got, err := parseCgroupV2(strings.NewReader(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("parseCgroupV2(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "4:memory:/a\n", "0::relative\n"} {
		if got, err := parseCgroupV2(strings.NewReader(in)); err == nil {
			t.Errorf("parseCgroupV2(%q) = %q, want an error", in, got)
		}
	}
}

// TestAutoCgroupParentOffSystemd: outside a systemd service the automatic
// parent is the fixed default.
func TestAutoCgroupParentOffSystemd(t *testing.T) {
	t.Setenv("INVOCATION_ID", "")
	if _, ok, why := delegatedCgroup(); ok || why == "" {
		t.Fatalf("delegatedCgroup without INVOCATION_ID = %v (%q)", ok, why)
	}
}

package api

import (
	"testing"

	"github.com/webtaskd/webtaskd/sandbox/agent"
)

func TestStripConsumed(t *testing.T) {
	for _, tc := range []struct {
		url     string
		unnamed bool
		want    string
		pb, mb  bool
	}{
		{"/api/run/c?key=T&x=1", true, "/api/run/c?x=1", false, false},
		{"/api/run/c?%6Bey=T&x=1", true, "/api/run/c?x=1", false, false}, // escaped name
		{"/api/run/c?key=T", true, "/api/run/c", false, false},
		{"/api/run/c/n?key=mine&x=1", false, "/api/run/c/n?key=mine&x=1", false, false},
		{"/api/run/c/n?webtask_pb=1&x=1&webtask%5Fmb=1&webtask_url=u", false, "/api/run/c/n?x=1", true, true},
		{"/api/run/c/n?webtask_pb=0", false, "/api/run/c/n", false, false},
		{"/api/run/c/n/sub", false, "/api/run/c/n/sub", false, false},
		{"/api/run/c/n?a=1&&b", false, "/api/run/c/n?a=1&&b", false, false}, // untouched when nothing is removed
	} {
		req := &agent.Request{URL: tc.url, Headers: map[string][]string{"authorization": {"Bearer T"}, "x": {"y"}}}
		pb, mb := stripConsumed(req, tc.unnamed)
		if req.URL != tc.want || pb != tc.pb || mb != tc.mb {
			t.Errorf("%s (unnamed %v): got %q pb=%v mb=%v, want %q pb=%v mb=%v", tc.url, tc.unnamed, req.URL, pb, mb, tc.want, tc.pb, tc.mb)
		}
		if _, ok := req.Headers["authorization"]; ok == tc.unnamed {
			t.Errorf("%s (unnamed %v): authorization kept=%v", tc.url, tc.unnamed, ok)
		}
		if req.Headers["x"][0] != "y" {
			t.Errorf("other headers lost")
		}
	}
}

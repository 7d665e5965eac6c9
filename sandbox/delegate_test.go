package sandbox

import "testing"

func TestBelow(t *testing.T) {
	for _, c := range []struct {
		path, dir string
		want      bool
	}{
		{"/system.slice/webtaskd.service/sandboxes", "/system.slice/webtaskd.service", true},
		{"/system.slice/webtaskd.service/", "/system.slice/webtaskd.service", false},
		{"/system.slice/webtaskd.service2/x", "/system.slice/webtaskd.service", false},
		{"/webtaskd", "/system.slice/webtaskd.service", false},
		// The root cgroup is exempt from the no-internal-processes rule.
		{"/webtaskd", "/", false},
	} {
		if got := below(c.path, c.dir); got != c.want {
			t.Errorf("below(%q, %q) = %v, want %v", c.path, c.dir, got, c.want)
		}
	}
}

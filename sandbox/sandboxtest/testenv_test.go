package sandboxtest

import (
	"testing"
	"time"
)

func TestCgroupParent(t *testing.T) {
	t.Setenv(CgroupRootEnv, "")
	if got := CgroupParent("webtaskd-test-x"); got != "/webtaskd-test-x" {
		t.Errorf("no root: %q", got)
	}
	t.Setenv(CgroupRootEnv, "/system.slice/webtaskd.service")
	if got := CgroupParent("webtaskd-test-x"); got != "/system.slice/webtaskd.service/webtaskd-test-x" {
		t.Errorf("delegated root: %q", got)
	}
}

func TestScaleNeverShortens(t *testing.T) {
	if TimeScale() < 1 || Scale(time.Second) < time.Second {
		t.Fatalf("scale %v shortens a wait", TimeScale())
	}
}

package sandbox_test

import (
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
	"github.com/webtaskd/webtaskd/rootfs"
	"github.com/webtaskd/webtaskd/sandbox"
)

// TestConfigSharesNoKeyQuota: a sandbox gets no session keyring of its own,
// so the host uid every sandbox's root maps to never runs out of kernel
// keys (kernel.keys.maxkeys is 200 on Debian: "unable to create session
// key: disk quota exceeded" at the 201st sandbox otherwise).
func TestConfigSharesNoKeyQuota(t *testing.T) {
	cfg, err := sandbox.BuildConfig(sandbox.SpecOptions{
		ID:           "keyring",
		CgroupParent: "/webtaskd-spec-test",
		Layout:       &rootfs.Layout{Dir: t.TempDir()},
		Limits:       types.Limits{MemoryMB: 64, Pids: 32, TmpMB: 8},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.NoNewKeyring {
		t.Error("NoNewKeyring is false: every sandbox would take one of its uid's kernel keys")
	}
	if !cfg.NoNewPrivileges {
		t.Error("NoNewPrivileges is false")
	}
}

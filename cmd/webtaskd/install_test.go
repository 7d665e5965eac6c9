package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webtaskd/webtaskd/daemon/daemontest"
)

// repoRoot is the checkout's top directory (the Makefile's).
const repoRoot = "../.."

func runMake(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", append([]string{"-C", repoRoot}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMakeInstall installs into a temporary root: the binaries, the config
// (every flag), the data dir (0700) and the unit land where
// docs/OPERATIONS.md says, the unit passes systemd-analyze verify, and
// uninstall keeps the data unless PURGE=1.
func TestMakeInstall(t *testing.T) {
	daemontest.RequireRoot(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Fatal("systemd-analyze is missing (make deps installs the systemd package)")
	}
	root := t.TempDir()
	out := runMake(t, "install", "DESTDIR="+root)
	if !strings.Contains(out, "not enabling or starting") {
		t.Errorf("install into DESTDIR did not say it skips the service:\n%s", out)
	}
	for path, mode := range map[string]os.FileMode{
		"usr/local/bin/webtaskd":              0o755,
		"usr/local/bin/wtctl":                 0o755,
		"etc/webtaskd/config.json":            0o640,
		"etc/systemd/system/webtaskd.service": 0o644,
		"var/lib/webtaskd":                    os.ModeDir | 0o700,
	} {
		fi, err := os.Stat(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if fi.Mode()&(os.ModeDir|os.ModePerm) != mode {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), mode)
		}
	}

	// The config names every flag of `webtaskd serve` but --config, and
	// the daemon accepts it.
	raw, err := os.ReadFile(filepath.Join(root, "etc/webtaskd/config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var kv map[string]any
	if err := json.Unmarshal(raw, &kv); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	var help bytes.Buffer
	m := NewMain(&help)
	_ = m.ParseFlags([]string{"serve", "-h"})
	for _, line := range strings.Split(help.String(), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "-"); ok {
			name, _, _ = strings.Cut(name, " ")
			if _, in := kv[name]; !in && name != "config" {
				t.Errorf("config.json lacks the flag %q", name)
			}
		}
	}
	m = NewMain(&help)
	if err := m.ParseFlags([]string{"serve", "--config", filepath.Join(root, "etc/webtaskd/config.json")}); err != nil {
		t.Errorf("the installed config.json does not load: %v", err)
	}

	// The unit: the installed one points at the documented paths; a copy
	// naming the staged binary passes systemd-analyze verify, warnings
	// (unknown keys) included.
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/webtaskd.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ExecStart=/usr/local/bin/webtaskd serve --config /etc/webtaskd/config.json",
		"Type=notify", "Delegate=yes", "KillMode=mixed", "Restart=on-failure", "LimitNOFILE="} {
		if !strings.Contains(string(unit), want+"\n") && !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	verifyDir := t.TempDir()
	staged := strings.ReplaceAll(string(unit), "/usr/local/bin/webtaskd", filepath.Join(root, "usr/local/bin/webtaskd"))
	if err := os.WriteFile(filepath.Join(verifyDir, "webtaskd.service"), []byte(staged), 0o644); err != nil {
		t.Fatal(err)
	}
	vout, err := exec.Command("systemd-analyze", "verify", filepath.Join(verifyDir, "webtaskd.service")).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(vout)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, vout)
	}

	// Uninstall keeps the config and the data; PURGE=1 removes them.
	if err := os.WriteFile(filepath.Join(root, "var/lib/webtaskd/keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	runMake(t, "uninstall", "DESTDIR="+root)
	for _, gone := range []string{"usr/local/bin/webtaskd", "usr/local/bin/wtctl", "etc/systemd/system/webtaskd.service"} {
		if _, err := os.Stat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s after uninstall: %v", gone, err)
		}
	}
	for _, kept := range []string{"var/lib/webtaskd/keep", "etc/webtaskd/config.json"} {
		if _, err := os.Stat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s after uninstall: %v", kept, err)
		}
	}
	runMake(t, "uninstall", "DESTDIR="+root, "PURGE=1")
	if _, err := os.Stat(filepath.Join(root, "var/lib/webtaskd")); !os.IsNotExist(err) {
		t.Errorf("data dir after PURGE=1: %v", err)
	}
}

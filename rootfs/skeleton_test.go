package rootfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseLDD(t *testing.T) {
	out := []byte(`	linux-vdso.so.1 (0x00007ffd)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f23)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f23)
	/lib64/ld-linux-x86-64.so.2 (0x00007f23)
`)
	got, err := parseLDD(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libdl.so.2", "/lib64/ld-linux-x86-64.so.2"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if _, err := parseLDD([]byte("\tlibfoo.so => not found\n")); !errors.Is(err, ErrLibraries) {
		t.Fatalf("missing library: %v, want ErrLibraries", err)
	}
}

func TestBuild(t *testing.T) {
	if _, err := os.Stat(DefaultTiniPath); err != nil {
		t.Skipf("SKIPPING: %s not installed", DefaultTiniPath)
	}
	dir := filepath.Join(t.TempDir(), "rootfs")
	mods := t.TempDir()
	l, err := Build(dir, Options{ModulesDir: mods})
	if err != nil {
		t.Fatal(err)
	}
	if l.NodePath != "/usr/bin/node" || l.InitPath != "/sbin/tini" {
		t.Errorf("layout paths %q %q", l.NodePath, l.InitPath)
	}
	dests := map[string]string{}
	for _, b := range l.Binds {
		dests[b.Dest] = b.Source
		st, err := os.Stat(filepath.Join(dir, b.Dest))
		if err != nil {
			t.Errorf("no mount target for %s: %v", b.Dest, err)
			continue
		}
		srcSt, err := os.Stat(b.Source)
		if err != nil || srcSt.IsDir() != st.IsDir() {
			t.Errorf("bind %s -> %s: target kind does not match source (%v)", b.Source, b.Dest, err)
		}
		if srcSt != nil && srcSt.IsDir() && b.Dest != "/node_modules" {
			t.Errorf("whole directory bound: %s", b.Source)
		}
	}
	if dests["/sbin/tini"] == "" || dests["/usr/bin/node"] == "" || dests["/node_modules"] == "" {
		t.Errorf("binds %v lack node, tini or modules", dests)
	}
	var libs int
	for d := range dests {
		if strings.Contains(d, ".so") {
			libs++
		}
	}
	if libs == 0 {
		t.Errorf("no shared libraries bound: %v", dests)
	}
	passwd, err := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	if err != nil || !strings.Contains(string(passwd), "webtask:x:1000:1000:") {
		t.Errorf("passwd %q %v", passwd, err)
	}
	checkAgent(t, filepath.Join(dir, "agent"))
	for _, d := range []string{"proc", "dev", "tmp", "etc/resolv.conf", "etc/hosts", "etc/group", "etc/nsswitch.conf"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Errorf("missing %s: %v", d, err)
		}
	}

	// Idempotent: a rebuild wipes stale files.
	stale := filepath.Join(dir, "etc/stale")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(dir, Options{}); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale file survived the rebuild")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Errorf("/node_modules target missing without ModulesDir: %v", err)
	}
}

func TestBuildErrors(t *testing.T) {
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(other, Options{}); !errors.Is(err, ErrUnsafeDir) {
		t.Errorf("Build over a foreign dir: %v, want ErrUnsafeDir", err)
	}
	if _, err := os.Stat(filepath.Join(other, "precious")); err != nil {
		t.Errorf("foreign file removed: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "r")
	if _, err := Build(dir, Options{NodePath: "/nonexistent/node"}); !errors.Is(err, ErrNodeMissing) {
		t.Errorf("missing node: %v, want ErrNodeMissing", err)
	}
	if _, err := Build(dir, Options{TiniPath: "/nonexistent/tini"}); !errors.Is(err, ErrTiniMissing) {
		t.Errorf("missing tini: %v, want ErrTiniMissing", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Build(dir, Options{}); !errors.Is(err, ErrNodeMissing) {
		t.Errorf("node not on PATH: %v, want ErrNodeMissing", err)
	}
	if _, err := Build("relative", Options{}); err == nil {
		t.Errorf("relative dir accepted")
	}
}

// checkAgent fails t unless dir holds the agent as one read-only script,
// the entry point agent.js, with every module of the embedded agent in it.
func checkAgent(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != agentEntry {
		t.Fatalf("%s holds %v, want only %s", dir, entries, agentEntry)
	}
	entry := filepath.Join(dir, agentEntry)
	if st, _ := os.Stat(entry); st == nil || st.Mode().Perm() != 0o444 {
		t.Errorf("%s mode %v, want 0444", entry, st)
	}
	got, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	var modules int
	err = fs.WalkDir(agentFiles, "agent", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		modules++
		if name := agentNamespace + ":" + strings.TrimPrefix(p, "agent/"); !strings.Contains(string(got), "// "+name+"\n") {
			t.Errorf("module %s is not in the bundled agent", name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if modules < 2 {
		t.Errorf("%d modules embedded", modules)
	}
}

func TestWriteAgent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	entry, err := WriteAgent(dir)
	if err != nil {
		t.Fatal(err)
	}
	if entry != filepath.Join(dir, "agent.js") {
		t.Errorf("entry = %q, want %s/agent.js", entry, dir)
	}
	checkAgent(t, dir)
}

func TestParseBuiltins(t *testing.T) {
	dir := t.TempDir()
	lexer := filepath.Join(dir, "lexer.js")
	if err := os.WriteFile(lexer, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := parseBuiltins([]byte(lexer + "\n\n"))
	if err != nil || !slices.Equal(got, []string{lexer}) {
		t.Fatalf("got %v %v, want [%s]", got, err, lexer)
	}
	if got, err := parseBuiltins(nil); err != nil || len(got) != 0 {
		t.Fatalf("node with embedded builtins: %v %v, want none", got, err)
	}
	for _, bad := range []string{filepath.Join(dir, "missing.js"), "relative.js", dir} {
		if _, err := parseBuiltins([]byte(bad + "\n")); !errors.Is(err, ErrNodeMissing) {
			t.Errorf("%q: %v, want ErrNodeMissing", bad, err)
		}
	}
}

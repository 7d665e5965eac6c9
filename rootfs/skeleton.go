package rootfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// Errors returned by Build. Callers match them with errors.Is.
var (
	// ErrNodeMissing: the node binary could not be found or is not executable.
	ErrNodeMissing = errors.New("rootfs: node binary not found")
	// ErrTiniMissing: the static tini binary could not be found.
	ErrTiniMissing = errors.New("rootfs: tini-static binary not found")
	// ErrLibraries: the shared libraries of node could not be determined.
	ErrLibraries = errors.New("rootfs: cannot resolve node's shared libraries")
	// ErrUnsafeDir: the target directory exists and is not a skeleton this
	// package built (Build refuses to wipe it).
	ErrUnsafeDir = errors.New("rootfs: refusing to rebuild a directory that is not a webtaskd skeleton")
)

// DefaultTiniPath is where Debian's tini package installs the static init.
const DefaultTiniPath = "/usr/bin/tini-static"

// In-sandbox paths of the skeleton.
const (
	SandboxNodePath    = "/usr/bin/node"
	SandboxInitPath    = "/sbin/tini"
	SandboxAgentPath   = "/agent/agent.js"
	SandboxModulesPath = "/node_modules"
	// SandboxModuleStorePath is where the provisioned module store is
	// bound (<store>/<sha256(name@version)>/node_modules/...).
	SandboxModuleStorePath = "/modules"
)

// markerName marks a directory as built by this package, so that a rebuild
// never wipes a directory it did not create.
const markerName = ".webtaskd-rootfs"

// Options configure Build.
type Options struct {
	// NodePath is the host node binary; "" resolves `node` on PATH (symlinks
	// evaluated).
	NodePath string
	// TiniPath is the host static tini binary; "" means DefaultTiniPath.
	TiniPath string
	// ModulesDir, when set, is a host directory bound read-only at
	// /node_modules (NODE_PATH) in every sandbox.
	ModulesDir string
	// ModuleStoreDir, when set, is the provisioned module store
	// (<data-dir>/modules), bound read-only at /modules in every sandbox:
	// mounted once per sandbox, never copied; installs that finish later
	// appear in it.
	ModuleStoreDir string
}

// Bind is one read-only bind mount of a host file or directory into the
// sandbox.
type Bind struct {
	// Source is the host path (symlinks evaluated).
	Source string
	// Dest is the in-sandbox path; the skeleton holds an empty mount target
	// there.
	Dest string
}

// Layout describes a built skeleton.
type Layout struct {
	// Dir is the host directory holding the skeleton (the sandbox root).
	Dir string
	// Binds are the read-only bind mounts the sandbox must add.
	Binds []Bind
	// NodePath is the in-sandbox path of the node binary.
	NodePath string
	// InitPath is the in-sandbox path of tini.
	InitPath string
	// AgentPath is the in-sandbox path of the runtime agent script.
	AgentPath string
}

// Build (re)creates the sandbox root skeleton in dir: empty mount targets for
// the read-only binds (node, tini, node's shared libraries, the builtins a
// distribution's node keeps outside its binary, the modules directory), a
// fresh minimal /etc, /tmp, /proc, /dev and the runtime agent in /agent
// (entry point /agent/agent.js).
// It wipes and rebuilds dir on every call (only if dir is empty, missing or
// a skeleton it built before). Directories are world-traversable so that the
// sandbox's mapped root can walk them.
func Build(dir string, opt Options) (*Layout, error) {
	if dir == "" || !filepath.IsAbs(dir) || filepath.Clean(dir) == "/" {
		return nil, fmt.Errorf("rootfs: skeleton dir must be an absolute path other than /: %q", dir)
	}
	dir = filepath.Clean(dir)

	nodeHost, err := resolveNode(opt.NodePath)
	if err != nil {
		return nil, err
	}
	tiniHost, err := resolveExecutable(opt.TiniPath, DefaultTiniPath, ErrTiniMissing)
	if err != nil {
		return nil, err
	}
	libs, err := sharedLibraries(nodeHost)
	if err != nil {
		return nil, err
	}
	builtins, err := externalBuiltins(nodeHost)
	if err != nil {
		return nil, err
	}

	binds := []Bind{
		{Source: nodeHost, Dest: SandboxNodePath},
		{Source: tiniHost, Dest: SandboxInitPath},
	}
	for _, l := range libs {
		src, err := filepath.EvalSymlinks(l)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrLibraries, l, err)
		}
		binds = append(binds, Bind{Source: src, Dest: l})
	}
	for _, b := range builtins {
		src, err := filepath.EvalSymlinks(b)
		if err != nil {
			return nil, fmt.Errorf("%w: externalized builtin: %w", ErrNodeMissing, err)
		}
		binds = append(binds, Bind{Source: src, Dest: b})
	}
	for _, d := range []struct{ dir, dest, what string }{
		{opt.ModulesDir, SandboxModulesPath, "modules dir"},
		{opt.ModuleStoreDir, SandboxModuleStorePath, "module store"},
	} {
		if d.dir == "" {
			continue
		}
		src, err := filepath.EvalSymlinks(d.dir)
		if err != nil {
			return nil, fmt.Errorf("rootfs: %s: %w", d.what, err)
		}
		if st, err := os.Stat(src); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("rootfs: %s %q is not a directory", d.what, d.dir)
		}
		binds = append(binds, Bind{Source: src, Dest: d.dest})
	}

	if err := wipe(dir); err != nil {
		return nil, err
	}
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"/proc", "/dev", "/tmp", "/etc", "/agent", SandboxModulesPath, SandboxModuleStorePath, "/usr/bin", "/sbin"} {
		if err := mkdirAll(filepath.Join(dir, d)); err != nil {
			return nil, err
		}
	}
	// /tmp is a tmpfs in the sandbox; keep the target sticky like a real /tmp.
	if err := os.Chmod(filepath.Join(dir, "tmp"), 0o1777); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	for _, b := range binds {
		if b.Dest == SandboxModulesPath || b.Dest == SandboxModuleStorePath {
			continue // directory targets created above
		}
		if err := mkdirAll(filepath.Join(dir, filepath.Dir(b.Dest))); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, b.Dest), nil, 0o444); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"/etc/passwd":        "root:x:0:0:root:/root:/sbin/nologin\nwebtask:x:1000:1000:webtask:/tmp:/sbin/nologin\n",
		"/etc/group":         "root:x:0:\nwebtask:x:1000:\n",
		"/etc/hosts":         "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"/etc/resolv.conf":   "",
		"/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
		"/etc/hostname":      "webtask\n",
	}
	for p, content := range files {
		if err := writeFile(filepath.Join(dir, p), []byte(content), 0o444); err != nil {
			return nil, err
		}
	}
	if _, err := WriteAgent(filepath.Join(dir, filepath.Dir(SandboxAgentPath))); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, markerName), []byte("built by webtaskd; rebuilt on every start\n"), 0o444); err != nil {
		return nil, err
	}
	return &Layout{
		Dir:       dir,
		Binds:     binds,
		NodePath:  SandboxNodePath,
		InitPath:  SandboxInitPath,
		AgentPath: SandboxAgentPath,
	}, nil
}

// wipe removes dir if it is a skeleton built earlier (or empty).
func wipe(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Lstat(filepath.Join(dir, markerName)); err != nil {
		return fmt.Errorf("%w: %s", ErrUnsafeDir, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("rootfs: removing old skeleton: %w", err)
	}
	return nil
}

func mkdirAll(p string) error {
	if err := os.MkdirAll(p, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	// MkdirAll honours the umask and leaves existing dirs alone; the sandbox's
	// mapped root must be able to traverse every level.
	if err := os.Chmod(p, 0o755); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return nil
}

func writeFile(p string, content []byte, mode os.FileMode) error {
	if err := os.WriteFile(p, content, mode); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	if err := os.Chmod(p, mode); err != nil {
		return fmt.Errorf("rootfs: %w", err)
	}
	return nil
}

func resolveNode(p string) (string, error) {
	if p == "" {
		found, err := exec.LookPath("node")
		if err != nil {
			return "", fmt.Errorf("%w on PATH (set the node path in the configuration): %w", ErrNodeMissing, err)
		}
		p = found
	}
	return resolveExecutable(p, "", ErrNodeMissing)
}

func resolveExecutable(p, def string, sentinel error) (string, error) {
	if p == "" {
		p = def
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", sentinel, p, err)
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", sentinel, p, err)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %w", sentinel, p, err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%w: %s is not an executable file", sentinel, p)
	}
	return real, nil
}

// sharedLibraries runs ldd on bin and returns the absolute library paths it
// reports (as ldd names them, which is where the dynamic loader looks).
func sharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		return nil, fmt.Errorf("%w: ldd %s: %w", ErrLibraries, bin, err)
	}
	return parseLDD(out)
}

// parseLDD extracts absolute paths from ldd output lines such as
// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and
// "/lib64/ld-linux-x86-64.so.2 (0x...)"; the vdso has no path.
func parseLDD(out []byte) ([]string, error) {
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		if strings.Contains(line, "not found") {
			return nil, fmt.Errorf("%w: %s", ErrLibraries, line)
		}
		if strings.Contains(line, "statically linked") {
			continue
		}
		rest := line
		if i := strings.Index(line, "=>"); i >= 0 {
			rest = strings.TrimSpace(line[i+2:])
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 || !filepath.IsAbs(fields[0]) {
			continue
		}
		seen[filepath.Clean(fields[0])] = true
	}
	libs := make([]string, 0, len(seen))
	for l := range seen {
		libs = append(libs, l)
	}
	sort.Strings(libs)
	if len(libs) == 0 {
		return nil, fmt.Errorf("%w: ldd reported no libraries", ErrLibraries)
	}
	return libs, nil
}

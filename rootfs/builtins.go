package rootfs

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// builtinsScript prints, one a line, the files node's build configuration
// says it loads its externalized builtins from: a distribution's node
// (Debian's nodejs 18: acorn, acorn-walk, cjs-module-lexer and undici under
// /usr/share/nodejs) defines NODE_SHARED_BUILTIN_<NAME>_PATH=<file> and
// aborts at start when one is missing. Node from nodejs.org or NodeSource
// embeds them and prints nothing.
const builtinsScript = `for (const d of (process.config.target_defaults || {}).defines || []) {
  const m = /^NODE_SHARED_BUILTIN_\w+_PATH=(.+)$/.exec(d);
  if (m) console.log(m[1]);
}`

// externalBuiltins runs node once and returns the builtin files it loads
// from outside its binary (absolute, sorted), each of which the sandbox
// must hold at the same path.
func externalBuiltins(node string) ([]string, error) {
	out, err := exec.Command(node, "-e", builtinsScript).Output()
	if err != nil {
		return nil, fmt.Errorf("%w: running %s to list its externalized builtins: %w", ErrNodeMissing, node, err)
	}
	return parseBuiltins(out)
}

// parseBuiltins checks the files builtinsScript printed: absolute paths of
// existing regular files.
func parseBuiltins(out []byte) ([]string, error) {
	var files []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%w: externalized builtin %q is not an absolute path", ErrNodeMissing, p)
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%w: externalized builtin: %w", ErrNodeMissing, err)
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%w: externalized builtin %s is not a file", ErrNodeMissing, p)
		}
		files = append(files, filepath.Clean(p))
	}
	sort.Strings(files)
	return files, nil
}

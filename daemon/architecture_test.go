package daemon_test

import (
	"bufio"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// modulePath prefixes every package of this module.
const modulePath = "github.com/webtaskd/webtaskd/"

// depLine is one line of docs/ARCHITECTURE.md's dependency list:
// "- `pkg` → `a`, `b`" or "- `pkg` → none".
var depLine = regexp.MustCompile("^- `([^`]+)` → (.+)$")

// TestArchitectureListsEveryDependency checks the "Dependencies" section of
// docs/ARCHITECTURE.md against `go list`: every package of the module is
// listed once, with exactly its direct imports of other packages of the
// module (non-test files, the build's tags).
func TestArchitectureListsEveryDependency(t *testing.T) {
	documented := readDocumentedDeps(t, filepath.Join("..", "docs", "ARCHITECTURE.md"))
	actual := goListDeps(t)
	for pkg, deps := range actual {
		doc, ok := documented[pkg]
		if !ok {
			t.Errorf("docs/ARCHITECTURE.md does not list `%s` (imports: %s)", pkg, describe(deps))
			continue
		}
		if !slices.Equal(doc, deps) {
			t.Errorf("docs/ARCHITECTURE.md: `%s` → %s, but it imports %s", pkg, describe(doc), describe(deps))
		}
	}
	for pkg := range documented {
		if _, ok := actual[pkg]; !ok {
			t.Errorf("docs/ARCHITECTURE.md lists `%s`, which is no package of the module", pkg)
		}
	}
}

func describe(deps []string) string {
	if len(deps) == 0 {
		return "none"
	}
	return "`" + strings.Join(deps, "`, `") + "`"
}

// readDocumentedDeps parses the dependency list of the doc's
// "## Dependencies" section.
func readDocumentedDeps(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps := map[string][]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = line == "## Dependencies"
			continue
		}
		m := depLine.FindStringSubmatch(line)
		if !in || m == nil {
			continue
		}
		pkg := m[1]
		if _, dup := deps[pkg]; dup {
			t.Errorf("docs/ARCHITECTURE.md lists `%s` twice", pkg)
		}
		list := []string{}
		if m[2] != "none" {
			for _, d := range strings.Split(m[2], ",") {
				d = strings.TrimSpace(d)
				if len(d) < 3 || d[0] != '`' || d[len(d)-1] != '`' {
					t.Errorf("docs/ARCHITECTURE.md: `%s`: %q is not a `package`", pkg, d)
					continue
				}
				list = append(list, d[1:len(d)-1])
			}
		}
		slices.Sort(list)
		deps[pkg] = list
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(deps) == 0 {
		t.Fatalf("%s has no dependency list (lines \"- `pkg` → `a`, `b`\" under \"## Dependencies\")", path)
	}
	return deps
}

// goListDeps returns each package of the module with its direct imports of
// the module's other packages, sorted.
func goListDeps(t *testing.T) map[string][]string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-tags", "seccomp", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", modulePath+"...").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], modulePath)
		list := []string{}
		for _, imp := range fields[1:] {
			if strings.HasPrefix(imp, modulePath) {
				list = append(list, strings.TrimPrefix(imp, modulePath))
			}
		}
		slices.Sort(list)
		deps[pkg] = list
	}
	return deps
}

package rootfs

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/evanw/esbuild/pkg/api"
)

// agentFiles is the Node runtime agent (the directory agent/), the
// long-lived process of every sandbox: node --max-old-space-size=N
// /agent/agent.js, with the runtime channel on fd 3. agent.js is its entry
// point; the other files are the CommonJS modules it requires at startup,
// all bundled into the one script the sandbox runs (WriteAgent).
// Its protocol is documented in package
// github.com/webtaskd/webtaskd/sandbox/agent. Webtask code's require()
// resolves Node built-ins, then modules under /node_modules (override with
// the environment variable WEBTASKD_MODULES_DIR), then NODE_PATH.
//
//go:embed agent
var agentFiles embed.FS

// agentEntry is the agent's entry point, relative to its directory.
const agentEntry = "agent.js"

// WriteAgent writes the runtime agent into dir (created if missing, 0755)
// as one read-only (0444) script, agentEntry, and returns its path: the
// entry point to run with node (dir/agent.js).
//
// The script is the agent's modules bundled into one (esbuild, once per
// process): node reads and compiles one file when a sandbox boots, instead
// of resolving, reading and compiling each module (node's part of a cold
// start about 3 ms shorter, 6 ms less CPU, and 0.25 MiB less memory per
// idle sandbox; docs/PERFORMANCE.md). Each module keeps its own scope and runs when
// first required, as under node's loader; the differences are in stack
// traces (agent.js and its line, not the module's file) and in the names of
// a few top-level functions esbuild renames to keep them apart.
func WriteAgent(dir string) (string, error) {
	bundle, err := agentBundle()
	if err != nil {
		return "", err
	}
	if err := mkdirAll(dir); err != nil {
		return "", err
	}
	entry := filepath.Join(dir, agentEntry)
	if err := writeFile(entry, bundle, 0o444); err != nil {
		return "", fmt.Errorf("rootfs: writing the runtime agent: %w", err)
	}
	return entry, nil
}

// agentBundle is the agent's modules bundled into one script.
var agentBundle = sync.OnceValues(bundleAgent)

// agentNamespace is esbuild's namespace of the embedded agent's files.
const agentNamespace = "webtaskd-agent"

func bundleAgent() ([]byte, error) {
	res := api.Build(api.BuildOptions{
		EntryPoints: []string{agentEntry},
		Bundle:      true,
		Platform:    api.PlatformNode,
		Format:      api.FormatCommonJS,
		Target:      api.ESNext, // bundled as written: no syntax is lowered
		Charset:     api.CharsetUTF8,
		LogLevel:    api.LogLevelSilent,
		Plugins:     []api.Plugin{embeddedAgent},
	})
	var msgs []string
	for _, m := range append(res.Errors, res.Warnings...) {
		msgs = append(msgs, m.Text)
	}
	if len(msgs) != 0 || len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("rootfs: bundling the runtime agent: %s", strings.Join(msgs, "; "))
	}
	return res.OutputFiles[0].Contents, nil
}

// embeddedAgent resolves the agent's relative requires in agentFiles, as
// node would (the path, path.js, path/index.js), and leaves every other
// require (node's built-ins) to run time.
var embeddedAgent = api.Plugin{
	Name: "webtaskd-agent",
	Setup: func(b api.PluginBuild) {
		b.OnResolve(api.OnResolveOptions{Filter: ".*"}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
			switch {
			case a.Kind == api.ResolveEntryPoint:
				return api.OnResolveResult{Path: a.Path, Namespace: agentNamespace}, nil
			case strings.HasPrefix(a.Path, "./") || strings.HasPrefix(a.Path, "../"):
				p := path.Join(path.Dir(a.Importer), a.Path)
				for _, c := range []string{p, p + ".js", p + "/index.js"} {
					if st, err := fs.Stat(agentFiles, path.Join("agent", c)); err == nil && !st.IsDir() {
						return api.OnResolveResult{Path: c, Namespace: agentNamespace}, nil
					}
				}
				return api.OnResolveResult{}, fmt.Errorf("%s: no module %q", a.Importer, a.Path)
			default:
				return api.OnResolveResult{Path: a.Path, External: true}, nil
			}
		})
		b.OnLoad(api.OnLoadOptions{Filter: ".*", Namespace: agentNamespace}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
			src, err := agentFiles.ReadFile(path.Join("agent", a.Path))
			if err != nil {
				return api.OnLoadResult{}, errors.Join(fmt.Errorf("%s: not in the embedded agent", a.Path), err)
			}
			s := string(src)
			return api.OnLoadResult{Contents: &s, Loader: api.LoaderJS}, nil
		})
	},
}

package rootfs

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
)

// agentFiles is the Node runtime agent (the directory agent/), the
// long-lived process of every sandbox: node --max-old-space-size=N
// /agent/agent.js, with the runtime channel on fd 3. agent.js is its entry
// point; the other files are the CommonJS modules it requires at startup.
// Its protocol is documented in package
// github.com/webtaskd/webtaskd/sandbox/agent. Webtask code's require()
// resolves Node built-ins, then modules under /node_modules (override with
// the environment variable WEBTASKD_MODULES_DIR), then NODE_PATH.
//
//go:embed agent
var agentFiles embed.FS

// agentEntry is the agent's entry point, relative to its directory.
const agentEntry = "agent.js"

// WriteAgent writes the runtime agent's files into dir (created if missing):
// files read-only (0444), subdirectories 0755 like the rest of the skeleton.
// It returns the path of the entry point to run with node (dir/agent.js).
func WriteAgent(dir string) (string, error) {
	if err := mkdirAll(dir); err != nil {
		return "", err
	}
	err := fs.WalkDir(agentFiles, "agent", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel("agent", filepath.FromSlash(p))
		if err != nil {
			return err
		}
		dest := filepath.Join(dir, rel)
		if d.IsDir() {
			return mkdirAll(dest)
		}
		content, err := agentFiles.ReadFile(path.Clean(p))
		if err != nil {
			return err
		}
		return writeFile(dest, content, 0o444)
	})
	if err != nil {
		return "", fmt.Errorf("rootfs: writing the runtime agent: %w", err)
	}
	return filepath.Join(dir, agentEntry), nil
}

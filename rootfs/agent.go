package rootfs

import _ "embed" // for AgentJS

// AgentJS is the Node runtime agent (agent/agent.js), the long-lived process
// of every sandbox: node --max-old-space-size=N /agent/agent.js, with the
// runtime channel on fd 3. Its protocol is documented in package
// github.com/webtaskd/webtaskd/sandbox/agent. Webtask code's require()
// resolves Node built-ins, then modules under /node_modules (override with
// the environment variable WEBTASKD_MODULES_DIR), then NODE_PATH.
//
//go:embed agent/agent.js
var AgentJS []byte

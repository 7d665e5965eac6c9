package main

import "github.com/webtaskd/webtaskd/sandbox"

// reexecSandboxInit turns this process into a sandbox's container init when
// libcontainer re-executed the binary as `webtaskd init`; otherwise it
// returns at once. It must run before anything else in main.
func reexecSandboxInit() { sandbox.ReexecInit() }

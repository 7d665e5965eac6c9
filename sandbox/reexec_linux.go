package sandbox

import (
	"os"

	"github.com/opencontainers/runc/libcontainer"

	// Device cgroup management for libcontainer's cgroup manager: without
	// it, configs with device rules fail at start.
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter runs before the Go runtime in the re-executed init process and
	// sets up the namespaces.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// ReexecInit turns this process into a sandbox's container init when it was
// re-executed by libcontainer (os.Args[1] == "init"); it never returns in
// that case. Otherwise it returns at once. Call it first thing in main (and
// in TestMain of packages that start sandboxes).
func ReexecInit() {
	if len(os.Args) > 1 && os.Args[1] == "init" {
		libcontainer.Init()
	}
}

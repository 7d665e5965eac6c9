package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/webtaskd/webtaskd/store"
)

// version and commit are set at build time with
// -ldflags "-X main.version=… -X main.commit=…"; commit falls back to the
// VCS revision Go stamps into the binary.
var (
	version = "dev"
	commit  = ""
)

// printVersion writes `webtaskd version`: the version, the commit, the Go
// toolchain, the runc (libcontainer) module linked in and the database
// schema version this binary migrates to.
func printVersion(w io.Writer) {
	runc, rev := "unknown", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/opencontainers/runc" {
				runc = d.Version
				if d.Replace != nil {
					runc = d.Replace.Version
				}
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	fmt.Fprintf(w, "webtaskd %s\ncommit:  %s\ngo:      %s\nrunc:    %s\nschema:  %d\n",
		version, cmp.Or(commit, rev, "unknown"), runtime.Version(), runc, store.SchemaVersion())
}

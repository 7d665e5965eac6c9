package main

import (
	"encoding/json"
	"flag"
	"io"

	"github.com/webtaskd/webtaskd/daemon"
)

// printConfigDefaults writes `webtaskd config-defaults`: a --config file
// (a JSON object of every flag but --config itself, to its value from the
// defaults, the environment and args), as `make install` writes it to
// /etc/webtaskd/config.json.
func printConfigDefaults(w io.Writer, args []string) error {
	cfg := daemon.DefaultConfig()
	fs := flag.NewFlagSet("webtaskd config-defaults", flag.ContinueOnError)
	fs.SetOutput(w)
	cfg.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	kv := map[string]any{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		kv[f.Name] = f.Value.String() // strings, durations, lists
		if g, ok := f.Value.(flag.Getter); ok {
			switch v := g.Get().(type) {
			case bool, int, int64, float64:
				kv[f.Name] = v
			}
		}
	})
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(kv)
}

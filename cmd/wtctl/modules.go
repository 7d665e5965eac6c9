package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/webtaskd/webtaskd/api/types"
)

// modulesPollInterval is how often `modules add --wait` asks again.
const modulesPollInterval = 2 * time.Second

func newModulesCmd(opts *connOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{Use: "modules", Aliases: []string{"mod"}, Short: "Provisioned npm modules of this host"}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	ls := &cobra.Command{
		Use:   "ls [NAME]",
		Short: "List provisioned modules (all, or the versions of NAME) with their state and npm's error",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/api/env/node/modules"
			if len(args) == 1 {
				path += "/" + url.PathEscape(args[0])
			}
			var list []types.Module
			if err := opts.call(cmd.Context(), "GET", path, nil, &list); err != nil {
				return err
			}
			return printModules(cmd, list, asJSON)
		},
	}
	var wait, reset bool
	add := &cobra.Command{
		Use:   "add NAME@VERSION...",
		Short: "Request modules (exact versions); --wait until none is queued",
		Args:  cobra.RangeArgs(1, 50),
		RunE: func(cmd *cobra.Command, args []string) error {
			specs, c, err := specsAndClient(opts, args)
			if err != nil {
				return err
			}
			path := "/api/env/node/modules"
			if reset {
				path += "?reset=1"
			}
			var list []types.Module
			if err := c.do(cmd.Context(), "POST", path, types.ModulesRequest{Modules: specs}, &list); err != nil {
				return err
			}
			if wait {
				if list, err = waitModules(cmd.Context(), c, specs, list); err != nil {
					return err
				}
			}
			if err := printModules(cmd, list, asJSON); err != nil {
				return err
			}
			for _, m := range list {
				if m.State == types.ModuleFailed {
					return fmt.Errorf("%s@%s failed", m.Name, m.Version)
				}
			}
			return nil
		},
	}
	add.Flags().BoolVar(&wait, "wait", false, "wait until every module is available or failed")
	add.Flags().BoolVar(&reset, "reset", false, "remove and install again")
	rm := &cobra.Command{
		Use:   "rm NAME@VERSION...",
		Short: "Remove modules from this host's module store",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			specs, c, err := specsAndClient(opts, args)
			if err != nil {
				return err
			}
			for _, s := range specs {
				path := "/api/env/node/modules/" + url.PathEscape(s.Name) + "?version=" + url.QueryEscape(s.Version)
				if err := c.do(cmd.Context(), "DELETE", path, nil, nil); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", s)
			}
			return nil
		},
	}
	cmd.AddCommand(ls, add, rm)
	return cmd
}

// specsAndClient parses the NAME@VERSION arguments, then makes the client.
func specsAndClient(opts *connOptions, args []string) ([]types.ModuleSpec, *client, error) {
	specs, err := parseModuleSpecs(args)
	if err != nil {
		return nil, nil, err
	}
	c, err := opts.client()
	return specs, c, err
}

// parseModuleSpecs parses NAME@VERSION arguments (scoped: @scope/name@1.2.3).
func parseModuleSpecs(args []string) ([]types.ModuleSpec, error) {
	out := make([]types.ModuleSpec, 0, len(args))
	for _, a := range args {
		i := strings.LastIndexByte(a, '@')
		if i <= 0 || i == len(a)-1 {
			return nil, fmt.Errorf("%q: want NAME@VERSION with an exact version", a)
		}
		out = append(out, types.ModuleSpec{Name: a[:i], Version: a[i+1:]})
	}
	return out, nil
}

// waitModules polls the versions of specs until none is queued (bounded by
// ctx and the client's timeout per request).
func waitModules(ctx context.Context, c *client, specs []types.ModuleSpec, list []types.Module) ([]types.Module, error) {
	for {
		queued := false
		for _, m := range list {
			queued = queued || m.State == types.ModuleQueued
		}
		if !queued {
			return list, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(modulesPollInterval):
		}
		next := make([]types.Module, 0, len(specs))
		for _, s := range specs {
			var versions []types.Module
			if err := c.do(ctx, "GET", "/api/env/node/modules/"+url.PathEscape(s.Name), nil, &versions); err != nil {
				return nil, err
			}
			for _, v := range versions {
				if v.Version == s.Version {
					next = append(next, v)
				}
			}
		}
		list = next
	}
}

func printModules(cmd *cobra.Command, list []types.Module, asJSON bool) error {
	if asJSON {
		return writeJSON(cmd, list)
	}
	writeModules(cmd.OutOrStdout(), list)
	return nil
}

func writeModules(out io.Writer, list []types.Module) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tVERSION\tSTATE\tSIZE\tERROR")
	for _, m := range list {
		size := "-"
		if m.SizeBytes > 0 {
			size = mib(uint64(m.SizeBytes))
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", m.Name, m.Version, m.State, size, orDash(m.Error))
	}
	_ = w.Flush()
}

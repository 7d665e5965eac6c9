package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/webtaskd/webtaskd/api/types"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newRootCmd(m *Main) *cobra.Command {
	var opts connOptions
	root := &cobra.Command{
		Use:           "wtctl",
		Short:         "Administer a webtaskd daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&opts.URL, "url", envOr("WEBTASKD_URL", "http://127.0.0.1:8721"), "daemon API URL (env WEBTASKD_URL)")
	pf.StringVar(&opts.Token, "token", os.Getenv("WEBTASKD_TOKEN"), "master token (env WEBTASKD_TOKEN; default: <data-dir>/master.token)")
	pf.StringVar(&opts.DataDir, "data-dir", envOr("WEBTASKD_DATA_DIR", "/var/lib/webtaskd"), "daemon data dir, to read master.token (env WEBTASKD_DATA_DIR)")
	pf.DurationVar(&opts.Timeout, "timeout", 30*time.Second, "request timeout")
	root.AddCommand(newSandboxesCmd(&opts), newWebtasksCmd(&opts))
	root.AddCommand(newTokenCmd(&opts), newKeysCmd(&opts))
	root.AddCommand(newStatusCmd(&opts), newLimitsCmd(&opts))
	root.AddCommand(newLogsCmd(&opts), newModulesCmd(&opts), newBackupCmd(&opts), newGCCmd(&opts), newAuditCmd(&opts))
	return root
}

func newSandboxesCmd(opts *connOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "sandboxes",
		Aliases: []string{"sb"},
		Short:   "List live sandboxes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := opts.targets(cmd.Context())
			if err != nil {
				return err
			}
			lists, answered, ferr := fanOut(cmd.Context(), cmd.ErrOrStderr(), ts, func(ctx context.Context, c *client) ([]types.SandboxInfo, error) {
				var list []types.SandboxInfo
				return list, c.do(ctx, "GET", "/api/admin/sandboxes", nil, &list)
			})
			if ferr != nil && len(answered) == 0 {
				return ferr
			}
			// In a cluster each sandbox is labelled with its member.
			var all []nodeSandbox
			for i, list := range lists {
				for _, s := range list {
					all = append(all, nodeSandbox{Node: answered[i].node, SandboxInfo: s})
				}
			}
			sort.SliceStable(all, func(i, j int) bool {
				if all[i].Container != all[j].Container {
					return all[i].Container < all[j].Container
				}
				return all[i].Node < all[j].Node
			})
			if asJSON {
				if err := writeJSON(cmd, all); err != nil {
					return err
				}
				return ferr
			}
			clustered := len(ts) > 1 || ts[0].node != ""
			now := time.Now()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			if clustered {
				fmt.Fprint(w, "NODE\t")
			}
			fmt.Fprintln(w, "ID\tCONTAINER\tPID\tSTATE\tUPTIME\tIDLE\tMEMORY\tCALLS")
			for _, s := range all {
				if clustered {
					fmt.Fprintf(w, "%s\t", s.Node)
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", s.ID, s.Container, s.Pid, s.State,
					age(now, s.CreatedAt), age(now, s.LastUsedAt), mib(s.MemoryBytes), s.Invocations)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			return ferr
		},
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newSandboxInspectCmd(opts, &asJSON), newSandboxKillCmd(opts), newSandboxTopCmd(opts))
	return cmd
}

// nodeSandbox is a sandbox with the cluster member running it (Node
// empty, and left out of JSON, on a single host).
type nodeSandbox struct {
	Node string `json:"node,omitempty"`
	types.SandboxInfo
}

func newWebtasksCmd(opts *connOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "webtasks", Aliases: []string{"wt"}, Short: "Inspect stored webtasks"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls [container]",
		Short: "List webtasks, of one container or of all",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			var all []types.Webtask
			for offset := 0; ; offset += 100 {
				path := fmt.Sprintf("/api/webtask?offset=%d&limit=100", offset)
				if len(args) == 1 {
					path = fmt.Sprintf("/api/webtask/%s?offset=%d&limit=100", url.PathEscape(args[0]), offset)
				}
				var page []types.Webtask
				if err := c.do(cmd.Context(), "GET", path, nil, &page); err != nil {
					return err
				}
				all = append(all, page...)
				if len(page) < 100 {
					break
				}
			}
			if asJSON {
				return writeJSON(cmd, all)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "CONTAINER\tNAME\tURL")
			for _, t := range all {
				fmt.Fprintf(w, "%s\t%s\t%s\n", t.Container, t.Name, t.WebtaskURL)
			}
			return w.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(ls)
	return cmd
}

func writeJSON(cmd *cobra.Command, v any) error {
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String()
}

func mib(b uint64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

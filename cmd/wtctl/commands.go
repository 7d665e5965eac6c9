package main

import (
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
			var list []types.SandboxInfo
			if err := opts.call(cmd.Context(), "GET", "/api/admin/sandboxes", nil, &list); err != nil {
				return err
			}
			sort.Slice(list, func(i, j int) bool { return list[i].Container < list[j].Container })
			if asJSON {
				return writeJSON(cmd, list)
			}
			now := time.Now()
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tCONTAINER\tPID\tSTATE\tUPTIME\tIDLE\tMEMORY\tCALLS")
			for _, s := range list {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%d\n", s.ID, s.Container, s.Pid, s.State,
					age(now, s.CreatedAt), age(now, s.LastUsedAt), mib(s.MemoryBytes), s.Invocations)
			}
			return w.Flush()
		},
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(newSandboxInspectCmd(opts, &asJSON), newSandboxKillCmd(opts), newSandboxTopCmd(opts))
	return cmd
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

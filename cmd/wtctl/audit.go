package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/webtaskd/webtaskd/api/types"
)

func newAuditCmd(opts *connOptions) *cobra.Command {
	var (
		limit  int
		before int64
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "audit [--limit N] [--before ID]",
		Short: "Show the audit log of management actions, newest first (time, token id, action, target, status)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			q := url.Values{"limit": {strconv.Itoa(limit)}}
			if before > 0 {
				q.Set("before", strconv.FormatInt(before, 10))
			}
			var entries []types.AuditEntry
			if err := c.do(cmd.Context(), "GET", "/api/admin/audit?"+q.Encode(), nil, &entries); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(entries)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tTIME\tTOKEN ID\tACTION\tTARGET\tSTATUS")
			for _, e := range entries {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\n", e.ID, e.At.Format(time.RFC3339), e.TokenID, e.Action, e.Target, e.Status)
			}
			return w.Flush()
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 100, "entries to show (1 to 1000)")
	cmd.Flags().Int64Var(&before, "before", 0, "show entries older than this id (paging)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

package main

import (
	"fmt"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/webtaskd/webtaskd/api/types"
)

func newKeysCmd(opts *connOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "List, rotate and retire key sets (signing + sealing keys)"}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List key sets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var keys []types.KeyInfo
			if err := opts.call(cmd.Context(), "GET", "/api/admin/keys", nil, &keys); err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, keys)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "KID\tCREATED\tSTATE")
			for _, k := range keys {
				state := "live"
				switch {
				case k.Current:
					state = "current"
				case k.Retired:
					state = "retired"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", k.ID, k.CreatedAt.Format(time.RFC3339), state)
			}
			return w.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new key set and make it current (old tokens keep verifying until retired)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var k types.KeyInfo
			if err := opts.call(cmd.Context(), "POST", "/api/admin/keys/rotate", nil, &k); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "current key set: %s\n", k.ID)
			return nil
		},
	}

	retire := &cobra.Command{
		Use:   "retire KID",
		Short: "Re-seal secrets and re-sign stored tokens under the current key, then retire KID",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out types.KeyRetirement
			if err := opts.call(cmd.Context(), "POST", "/api/admin/keys/"+url.PathEscape(args[0])+"/retire", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "retired %s: %d webtasks re-sealed, %d stored tokens re-signed\n", out.Kid, out.Resealed, out.Resigned)
			return nil
		},
	}
	cmd.AddCommand(ls, rotate, retire)
	return cmd
}

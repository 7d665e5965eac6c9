package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/webtaskd/webtaskd/api/types"
)

func newGCCmd(opts *connOptions) *cobra.Command {
	var olderThan string
	cmd := &cobra.Command{
		Use:   "gc [--older-than 720h]",
		Short: "Collect now the code blobs of unnamed code tokens and the npm module versions that no stored webtask names",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			var r types.GCResult
			if err := c.do(cmd.Context(), "POST", "/api/admin/gc", types.GCRequest{OlderThan: olderThan}, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d code blobs and %d module versions older than %s\n", r.CodeBlobsRemoved, r.ModulesRemoved, r.OlderThan)
			return nil
		},
	}
	cmd.Flags().StringVar(&olderThan, "older-than", "", "collect blobs and module versions older than this (default 720h)")
	return cmd
}

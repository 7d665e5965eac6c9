package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// issueToken posts claims to /api/tokens/issue; the answer is the raw JWT.
func (c *client) issueToken(ctx context.Context, claims map[string]any) (string, error) {
	b, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", c.base+"/api/tokens/issue", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach webtaskd at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		if json.Unmarshal(raw, &e) == nil && e.Message != "" {
			return "", &e
		}
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return strings.TrimSpace(string(raw)), nil
}

// tokenCreateOptions are the flags of `wtctl token create`.
type tokenCreateOptions struct {
	container string
	ttl       time.Duration
	dd        int
	limits    map[string]string
	asJSON    bool
}

func newTokenCmd(opts *connOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Mint, inspect and revoke webtask tokens"}

	var co tokenCreateOptions
	create := &cobra.Command{
		Use:   "create --container C [--ttl 720h] [--dd 1] [--limit lm=100 ...]",
		Short: "Mint a tenant token confined to one container (or a comma list)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if co.container == "" {
				return fmt.Errorf("--container is required")
			}
			if co.dd < 0 {
				return fmt.Errorf("--dd must not be negative")
			}
			if co.ttl < 0 {
				return fmt.Errorf("--ttl must not be negative")
			}
			claims := map[string]any{"ten": co.container, "dd": co.dd}
			if co.ttl > 0 {
				claims["exp"] = time.Now().Add(co.ttl).Unix()
			}
			for k, v := range co.limits {
				claims[k] = v // the server checks the claim name and range
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			tok, err := c.issueToken(cmd.Context(), claims)
			if err != nil {
				return err
			}
			if co.asJSON {
				return writeJSON(cmd, map[string]any{"token": tok, "container": co.container})
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := create.Flags()
	f.StringVar(&co.container, "container", "", "container(s) the token may manage: a name or a comma list (the ten claim)")
	f.DurationVar(&co.ttl, "ttl", 0, "lifetime (exp claim); 0 = no expiry")
	f.IntVar(&co.dd, "dd", 1, "delegation depth: 1 lets the tenant create webtasks (dd:0 tokens), 0 makes a leaf")
	f.StringToStringVar(&co.limits, "limit", nil, "rate-limit claims, e.g. --limit lm=600,lts=10 (ls lm lh ld lw lo per container, lts…lto per token)")
	f.BoolVar(&co.asJSON, "json", false, "print JSON")

	var decrypt, fetchCode bool
	inspect := &cobra.Command{
		Use:   "inspect TOKEN",
		Short: "Show the claims of a token (--decrypt shows its secrets)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"token": {args[0]}, "meta": {"1"}}
			if decrypt {
				q.Set("decrypt", "1")
			}
			if fetchCode {
				q.Set("fetch_code", "1")
			}
			var claims map[string]any
			if err := opts.call(cmd.Context(), "GET", "/api/tokens/inspect?"+q.Encode(), nil, &claims); err != nil {
				return err
			}
			return writeJSON(cmd, claims)
		},
	}
	inspect.Flags().BoolVar(&decrypt, "decrypt", false, "include the secrets in plain text (master or issuer only)")
	inspect.Flags().BoolVar(&fetchCode, "fetch-code", false, "include the stored code")

	revoke := &cobra.Command{
		Use:   "revoke TOKEN",
		Short: "Revoke a token and, recursively, every token issued from it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var out struct {
				Jti string `json:"jti"`
			}
			if err := opts.call(cmd.Context(), "POST", "/api/tokens/revoke?token="+url.QueryEscape(args[0]), nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", out.Jti)
			return nil
		},
	}
	cmd.AddCommand(create, inspect, revoke)
	return cmd
}

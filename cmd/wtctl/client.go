package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/webtaskd/webtaskd/api/types"
)

// client calls the daemon's HTTP API with a bearer token.
type client struct {
	base  string
	token string
	http  *http.Client
}

// connOptions are the persistent flags every command shares.
type connOptions struct {
	URL     string
	Token   string
	DataDir string
	Timeout time.Duration
}

func (o *connOptions) client() (*client, error) {
	tok := o.Token
	if tok == "" {
		path := filepath.Join(o.DataDir, "master.token")
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no token: pass --token, set WEBTASKD_TOKEN, or make %s readable (%v)", path, err)
		}
		tok = strings.TrimSpace(string(raw))
	}
	return &client{base: strings.TrimRight(o.URL, "/"), token: tok, http: &http.Client{Timeout: o.Timeout}}, nil
}

// apiError is the daemon's JSON error body.
type apiError types.ErrorBody

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d, req_id %s)", e.Message, e.Code, e.ReqID)
}

// call sends one request with the connection options: client, then do.
func (o *connOptions) call(ctx context.Context, method, path string, in, out any) error {
	c, err := o.client()
	if err != nil {
		return err
	}
	return c.do(ctx, method, path, in, out)
}

// do sends a request and decodes a JSON answer into out (when non-nil).
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("unexpected answer from %s%s: %w", c.base, path, err)
	}
	return nil
}

// send sends a request with in as its JSON body (when non-nil) and returns
// a successful response, whose body the caller closes; an error status is
// the daemon's error.
func (c *client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach webtaskd at %s: %w", c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e apiError
		if json.Unmarshal(raw, &e) == nil && e.Message != "" {
			return nil, &e
		}
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(raw))
	}
	return resp, nil
}

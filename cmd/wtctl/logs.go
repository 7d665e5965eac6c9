package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/webtaskd/webtaskd/api/types"
)

// errStreamClosed: the daemon ended a followed log stream (shutdown).
var errStreamClosed = errors.New("log stream closed by the daemon")

func newLogsCmd(opts *connOptions) *cobra.Command {
	var (
		follow  bool
		tail    int
		asJSON  bool
		webtask string
	)
	cmd := &cobra.Command{
		Use:   "logs CONTAINER",
		Short: "Print a container's webtask output (recent lines; -f follows)",
		Long: `Print the output (console.*, stdout, stderr) of the webtasks of CONTAINER.

Without -f, print the most recent lines the daemon keeps (at most --tail) and
exit. With -f, print them, then every new line as it is written, until
interrupted (Ctrl-C) or the daemon closes the stream (exit status 1).
A reader too slow for the output loses lines; a marker line says how many.
--webtask NAME keeps the lines of that webtask (and the daemon's markers);
--tail counts lines before that filter.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := opts.client()
			if err != nil {
				return err
			}
			if tail < 0 {
				return fmt.Errorf("--tail must not be negative")
			}
			return c.streamLogs(cmd.Context(), cmd.OutOrStdout(), args[0], tail, follow, recordPrinter{asJSON: asJSON, webtask: webtask})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until interrupted")
	cmd.Flags().IntVar(&tail, "tail", 100, "recent lines to print first (the daemon keeps at most 100 per container)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the raw bunyan records, one JSON object per line")
	cmd.Flags().StringVar(&webtask, "webtask", "", "print only the lines of this webtask")
	return cmd
}

// streamLogs reads GET /api/logs/tenant/{container} (Server-Sent Events)
// and prints each record. It returns nil when ctx ends or, without
// follow, when the backlog was printed.
func (c *client) streamLogs(ctx context.Context, w io.Writer, container string, tail int, follow bool, p recordPrinter) error {
	q := url.Values{"tail": {strconv.Itoa(tail)}}
	if !follow {
		q.Set("follow", "0")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/logs/tenant/"+url.PathEscape(container)+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "text/event-stream")
	// No overall timeout: a followed stream lasts until interrupted.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach webtaskd at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e apiError
		if json.Unmarshal(raw, &e) == nil && e.Message != "" {
			return &e
		}
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	var data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return nil
			case !follow && errors.Is(err, io.EOF):
				return nil
			case errors.Is(err, io.EOF):
				return errStreamClosed
			default:
				return fmt.Errorf("reading the log stream: %w", err)
			}
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data != "" {
				p.print(w, data)
			}
			data = ""
		case strings.HasPrefix(line, "event:"):
			data = "" // pings and other named events carry no record
			if strings.TrimSpace(strings.TrimPrefix(line, "event:")) != "" {
				// skip until the blank line
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\n" {
						break
					}
				}
			}
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		}
	}
}

// recordPrinter prints log records: raw JSON or "time req_id msg" lines,
// only those of one webtask when webtask is set (daemon markers, which name
// no webtask, always).
type recordPrinter struct {
	asJSON  bool
	webtask string
}

func (p recordPrinter) print(w io.Writer, data string) {
	var r types.LogRecord
	if err := json.Unmarshal([]byte(data), &r); err != nil {
		fmt.Fprintln(w, data)
		return
	}
	if p.webtask != "" && r.Sandbox && r.Webtask != p.webtask {
		return
	}
	if p.asJSON {
		fmt.Fprintln(w, data)
		return
	}
	id := r.ReqID
	if id == "" {
		id = "-"
	}
	fmt.Fprintf(w, "%s %s %s\n", r.Time, id, r.Msg)
}

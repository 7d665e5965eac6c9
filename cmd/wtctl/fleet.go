package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/webtaskd/webtaskd/api/types"
)

func newSandboxInspectCmd(opts *connOptions, asJSON *bool) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect ID",
		Short: "Show one sandbox: limits, cgroup memory and CPU usage, pids, OOM kills, invocations, last use",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var info types.SandboxInfo
			if err := opts.call(cmd.Context(), "GET", "/api/admin/sandboxes/"+url.PathEscape(args[0]), nil, &info); err != nil {
				return err
			}
			if *asJSON {
				return writeJSON(cmd, info)
			}
			printInspect(cmd.OutOrStdout(), info, time.Now())
			return nil
		},
	}
}

func printInspect(out io.Writer, s types.SandboxInfo, now time.Time) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	container := s.Container
	if container == "" {
		container = "- (pooled)"
	}
	fmt.Fprintf(w, "ID\t%s\n", s.ID)
	fmt.Fprintf(w, "Container\t%s\n", container)
	fmt.Fprintf(w, "State\t%s\n", s.State)
	fmt.Fprintf(w, "Served\t%s\n", orDash(string(s.Served)))
	fmt.Fprintf(w, "Pid\t%d\n", s.Pid)
	fmt.Fprintf(w, "Uptime\t%s\n", age(now, s.CreatedAt))
	fmt.Fprintf(w, "Last use\t%s ago\n", age(now, s.LastUsedAt))
	fmt.Fprintf(w, "Invocations\t%d (%d in flight)\n", s.Invocations, s.InFlight)
	l := s.Limits
	fmt.Fprintf(w, "Limits\tmemory %d MiB, cpus %g, pids %d, tmp %d MiB, exec timeout %s, concurrency %s\n",
		l.MemoryMB, l.CPUs, l.Pids, l.TmpMB, orDash(msString(l.ExecTimeoutMS)), orDash(intString(l.MaxConcurrency)))
	if cg := s.Cgroup; cg != nil {
		fmt.Fprintf(w, "Cgroup\t%s\n", cg.Path)
		fmt.Fprintf(w, "Memory\t%s (peak %s, limit %s)\n", mib(cg.MemoryBytes), mib(cg.MemoryMaxBytes), mib(cg.MemoryLimitBytes))
		fmt.Fprintf(w, "CPU time\t%s\n", time.Duration(cg.CPUNanos).Round(time.Microsecond))
		fmt.Fprintf(w, "Pids\t%d / %d\n", cg.Pids, cg.PidsLimit)
		fmt.Fprintf(w, "OOM kills\t%d\n", cg.OOMKills)
	}
	_ = w.Flush()
}

func newSandboxKillCmd(opts *connOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "kill ID",
		Short: "Destroy a sandbox (its container gets a fresh one on its next call)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.call(cmd.Context(), "DELETE", "/api/admin/sandboxes/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "killed %s\n", args[0])
			return nil
		},
	}
}

func newSandboxTopCmd(opts *connOptions) *cobra.Command {
	var interval time.Duration
	var iterations int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Live view of the sandboxes and the pool, refreshed every --interval (Ctrl-C stops)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return fmt.Errorf("--interval must be at least 100ms")
			}
			c, err := opts.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			t := time.NewTicker(interval)
			defer t.Stop()
			for i := 0; iterations == 0 || i < iterations; i++ {
				var list []types.SandboxInfo
				var st statusBody
				if err := c.do(cmd.Context(), "GET", "/api/admin/sandboxes", nil, &list); err != nil {
					return err
				}
				if err := c.do(cmd.Context(), "GET", "/api/admin/status", nil, &st); err != nil {
					return err
				}
				sort.Slice(list, func(i, j int) bool { return list[i].LastUsedAt.After(list[j].LastUsedAt) })
				fmt.Fprint(out, "\x1b[H\x1b[2J") // home, clear
				printStatus(out, st.Fleet)
				fmt.Fprintln(out)
				w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "ID\tCONTAINER\tSTATE\tSERVED\tMEMORY\tCALLS\tIN FLIGHT\tIDLE")
				now := time.Now()
				for _, s := range list {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.ID, s.Container, s.State, s.Served,
						mib(s.MemoryBytes), s.Invocations, s.InFlight, age(now, s.LastUsedAt))
				}
				_ = w.Flush()
				if iterations != 0 && i == iterations-1 {
					break
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-t.C:
				}
			}
			return nil
		},
	}
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "refresh interval")
	cmd.Flags().IntVar(&iterations, "iterations", 0, "stop after this many refreshes (0: until Ctrl-C)")
	return cmd
}

// statusBody is GET /api/admin/status.
type statusBody struct {
	Status string            `json:"status"`
	Fleet  types.FleetStatus `json:"fleet"`
}

func newStatusCmd(opts *connOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Daemon health and pool state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := opts.targets(cmd.Context())
			if err != nil {
				return err
			}
			sts, answered, ferr := fanOut(cmd.Context(), cmd.ErrOrStderr(), ts, fetchStatus)
			if ferr != nil && len(answered) == 0 {
				return ferr
			}
			if len(ts) == 1 && ts[0].node == "" { // a single host: as ever
				st := sts[0]
				if asJSON {
					return writeJSON(cmd, map[string]any{"health": st.Health, "fleet": st.Fleet})
				}
				fmt.Fprintf(cmd.OutOrStdout(), "daemon: %s (%s)\n", st.Health, ts[0].c.base)
				printStatus(cmd.OutOrStdout(), st.Fleet)
				return nil
			}
			if asJSON {
				for i := range sts {
					sts[i].Node = answered[i].node
				}
				if err := writeJSON(cmd, map[string]any{"members": sts}); err != nil {
					return err
				}
				return ferr
			}
			for i, st := range sts {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				fmt.Fprintf(cmd.OutOrStdout(), "member %s: %s (%s)\n", answered[i].node, st.Health, answered[i].c.base)
				printStatus(cmd.OutOrStdout(), st.Fleet)
			}
			return ferr
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// memberStatus is one daemon's health and fleet status.
type memberStatus struct {
	Node   string            `json:"node,omitempty"`
	Health string            `json:"health"`
	Fleet  types.FleetStatus `json:"fleet"`
}

func fetchStatus(ctx context.Context, c *client) (memberStatus, error) {
	var health map[string]string
	if err := c.do(ctx, "GET", "/healthz", nil, &health); err != nil {
		return memberStatus{}, err
	}
	var st statusBody
	if err := c.do(ctx, "GET", "/api/admin/status", nil, &st); err != nil {
		return memberStatus{}, err
	}
	return memberStatus{Health: health["status"], Fleet: st.Fleet}, nil
}

func printStatus(out io.Writer, st types.FleetStatus) {
	fmt.Fprintf(out, "pool: %d/%d ready\n", st.PoolReady, st.PoolTarget)
	max := "no cap"
	if st.MaxSandboxes > 0 {
		max = fmt.Sprintf("max %d", st.MaxSandboxes)
	}
	fmt.Fprintf(out, "sandboxes: %d running, %d paused, %d pooled (%s)\n",
		st.Sandboxes[types.SandboxRunning], st.Sandboxes[types.SandboxPaused], st.Sandboxes[types.SandboxPooled], max)
	if f := st.Fleet; f != nil {
		budget := "no budget"
		if f.MemoryBudgetBytes > 0 {
			budget = "budget " + mib(uint64(f.MemoryBudgetBytes))
		}
		fmt.Fprintf(out, "fleet memory: %s (%s), pids %d, OOM kills %d\n", mib(f.MemoryBytes), budget, f.Pids, f.OOMKills)
	}
}

func newLimitsCmd(opts *connOptions) *cobra.Command {
	cmd := &cobra.Command{Use: "limits", Short: "Per-container sandbox limits and quotas (0 or unset: the daemon default)"}
	var asJSON bool
	path := func(c string) string { return "/api/admin/containers/" + url.PathEscape(c) + "/limits" }
	print := func(cmd *cobra.Command, l types.ContainerLimits) error {
		if asJSON {
			return writeJSON(cmd, l)
		}
		w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CONTAINER\tMEMORY\tCPUS\tPIDS\tEXEC TIMEOUT\tCONCURRENCY\tMAX RESPONSE\tMAX WEBTASKS\tMAX CRON JOBS\tMAX STORAGE")
		q := l.Quotas
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.Container, orDash(intString(l.MemoryMB)+suffix(l.MemoryMB, "MiB")),
			orDash(floatString(l.CPUs)), orDash(intString(l.Pids)), orDash(msString(l.ExecTimeoutMS)), orDash(intString(l.MaxConcurrency)),
			orDash(intString(l.MaxResponseBytes)), orDash(intString(q.MaxWebtasks)), orDash(intString(q.MaxCronJobs)), orDash(intString(q.MaxStorageBytes)))
		return w.Flush()
	}
	get := &cobra.Command{
		Use:   "get CONTAINER",
		Short: "Show a container's overrides",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var l types.ContainerLimits
			if err := opts.call(cmd.Context(), "GET", path(args[0]), nil, &l); err != nil {
				return err
			}
			return print(cmd, l)
		},
	}
	var in types.ContainerLimits
	var execTimeout time.Duration
	set := &cobra.Command{
		Use:   "set CONTAINER [--memory-mb N] [--cpus X] [--pids N] [--exec-timeout D] [--max-concurrency N] [--max-response-bytes N] [--max-webtasks N] [--max-cron-jobs N] [--max-storage-bytes N]",
		Short: "Replace a container's overrides; its next call gets a sandbox with them",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := in
			body.ExecTimeoutMS = execTimeout.Milliseconds()
			var l types.ContainerLimits
			if err := opts.call(cmd.Context(), "PUT", path(args[0]), body, &l); err != nil {
				return err
			}
			return print(cmd, l)
		},
	}
	f := set.Flags()
	f.IntVar(&in.MemoryMB, "memory-mb", 0, "memory limit in MiB (V8's heap follows it)")
	f.Float64Var(&in.CPUs, "cpus", 0, "CPU quota in cores")
	f.IntVar(&in.Pids, "pids", 0, "task (pids) limit")
	f.DurationVar(&execTimeout, "exec-timeout", 0, "limit of one call")
	f.IntVar(&in.MaxConcurrency, "max-concurrency", 0, "concurrent calls; more queue, then 429")
	f.Int64Var(&in.MaxResponseBytes, "max-response-bytes", 0, "response body budget in bytes (a stream past it is cut off)")
	f.IntVar(&in.Quotas.MaxWebtasks, "max-webtasks", 0, "quota: named webtasks of the container (0: the daemon's)")
	f.IntVar(&in.Quotas.MaxCronJobs, "max-cron-jobs", 0, "quota: cron jobs of the container (0: the daemon's)")
	f.Int64Var(&in.Quotas.MaxStorageBytes, "max-storage-bytes", 0, "quota: summed bytes of the container's storage documents (0: the daemon's)")
	rm := &cobra.Command{
		Use:   "rm CONTAINER",
		Short: "Remove a container's overrides (back to the daemon defaults)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return opts.call(cmd.Context(), "DELETE", path(args[0]), nil, nil)
		},
	}
	cmd.PersistentFlags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(get, set, rm)
	return cmd
}

func orDash(s string) string {
	if s == "" || s == "0" {
		return "-"
	}
	return s
}

func intString[T int | int64](n T) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func floatString(f float64) string {
	if f == 0 {
		return ""
	}
	return fmt.Sprint(f)
}

func msString(ms int64) string {
	if ms == 0 {
		return ""
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func suffix(n int, unit string) string {
	if n == 0 {
		return ""
	}
	return " " + unit
}

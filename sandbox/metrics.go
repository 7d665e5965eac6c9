package sandbox

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/webtaskd/webtaskd/api/types"
)

// metrics are the Manager's Prometheus metrics (webtaskd_*). Sandboxes by
// state, pool size and fleet memory are read at scrape time.
type metrics struct {
	invocations  *prometheus.CounterVec   // served
	durations    *prometheus.HistogramVec // served
	failures     *prometheus.CounterVec   // reason
	starts       *prometheus.CounterVec   // kind: pool, cold
	startSeconds prometheus.Histogram
	evictions    prometheus.Counter
	ooms         prometheus.Counter
	timeouts     prometheus.Counter
	retries      prometheus.Counter
}

// Failure reasons of webtaskd_invocation_failures_total.
const (
	failTimeout  = "timeout"
	failOOM      = "oom"
	failCrashed  = "crashed"
	failBusy     = "busy"
	failCapacity = "capacity"
	failStart    = "start"
)

func newMetrics() *metrics {
	return &metrics{
		invocations: counterVec("webtaskd_invocations_total",
			"Webtask invocations by how their sandbox was obtained (warm, pooled, cold).", "served"),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "webtaskd_invocation_duration_seconds",
			Help:    "Duration of webtask invocations in the sandbox manager, including boot and queueing.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"served"}),
		failures: counterVec("webtaskd_invocation_failures_total",
			"Failed invocations by reason (timeout, oom, crashed, busy, capacity, start).", "reason"),
		starts: counterVec("webtaskd_sandbox_starts_total",
			"Sandboxes booted, for the pool or cold for a waiting call.", "kind"),
		startSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "webtaskd_sandbox_start_seconds",
			Help:    "Time to boot a sandbox until its runtime agent is ready.",
			Buckets: []float64{.01, .02, .03, .05, .075, .1, .15, .25, .5, 1, 2.5, 10},
		}),
		evictions: counter("webtaskd_sandbox_evictions_total",
			"Idle sandboxes destroyed to stay within --max-sandboxes."),
		ooms: counter("webtaskd_ooms_total",
			"Invocations that failed because the sandbox hit its memory limit (seen through the cgroup)."),
		timeouts: counter("webtaskd_timeouts_total",
			"Invocations that ran past their exec timeout (the sandbox is recycled)."),
		retries: counter("webtaskd_invocation_retries_total",
			"Invocations retried on a fresh sandbox because theirs was found dead before the call reached it."),
	}
}

// counter is a counter named name.
func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// counterVec is a counter named name with one label.
func counterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
}

// Describe implements prometheus.Collector.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

var (
	descSandboxes = prometheus.NewDesc("webtaskd_sandboxes", "Live sandboxes by state (pooled, running, paused).", []string{"state"}, nil)
	descPoolSize  = prometheus.NewDesc("webtaskd_pool_size", "Pre-warmed sandboxes ready in the pool.", nil, nil)
	descPoolWant  = prometheus.NewDesc("webtaskd_pool_target", "Pool target size: --pool-size, raised while never-seen containers arrive faster than the pool refills.", nil, nil)
	descFleetMem  = prometheus.NewDesc("webtaskd_fleet_memory_bytes", "Memory charged to the parent cgroup of all sandboxes.", nil, nil)
	descBudget    = prometheus.NewDesc("webtaskd_fleet_memory_budget_bytes", "Memory budget of the parent cgroup (--memory-budget; 0 = none).", nil, nil)
	descFleetOOMs = prometheus.NewDesc("webtaskd_fleet_oom_kills", "OOM kills counted by the parent cgroup (sandboxes and budget).", nil, nil)
)

// Collect implements prometheus.Collector.
func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.met.invocations.Collect(ch)
	m.met.durations.Collect(ch)
	m.met.failures.Collect(ch)
	m.met.starts.Collect(ch)
	m.met.startSeconds.Collect(ch)
	m.met.evictions.Collect(ch)
	m.met.ooms.Collect(ch)
	m.met.timeouts.Collect(ch)
	m.met.retries.Collect(ch)
	st := m.Status()
	for _, s := range []types.SandboxState{types.SandboxPooled, types.SandboxRunning, types.SandboxPaused} {
		ch <- prometheus.MustNewConstMetric(descSandboxes, prometheus.GaugeValue, float64(st.Sandboxes[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, float64(st.PoolReady))
	ch <- prometheus.MustNewConstMetric(descPoolWant, prometheus.GaugeValue, float64(st.PoolTarget))
	if st.Fleet != nil {
		ch <- prometheus.MustNewConstMetric(descFleetMem, prometheus.GaugeValue, float64(st.Fleet.MemoryBytes))
		ch <- prometheus.MustNewConstMetric(descBudget, prometheus.GaugeValue, float64(st.Fleet.MemoryBudgetBytes))
		ch <- prometheus.MustNewConstMetric(descFleetOOMs, prometheus.GaugeValue, float64(st.Fleet.OOMKills))
	}
}

package types

// Readiness is the body of GET /readyz: Status is "ready" (HTTP 200) when
// every check is "ok", else "not ready" (HTTP 503).
type Readiness struct {
	Status string `json:"status"`
	// Checks maps a part ("store", "sandboxes") to "ok" or what is wrong.
	Checks map[string]string `json:"checks"`
	// Pool is the pre-booted sandbox pool: informative, never a failed
	// check (an empty pool only means cold starts).
	Pool PoolState `json:"pool"`
}

// PoolState is the pool's target size and how many sandboxes wait in it.
type PoolState struct {
	Target int `json:"target"`
	Ready  int `json:"ready"`
}

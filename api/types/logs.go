package types

// LogRecord is one real-time log event (GET /api/logs/tenant/{c}), a
// bunyan record (reference §1.4).
type LogRecord struct {
	Name     string `json:"name"`
	Hostname string `json:"hostname"`
	Pid      int    `json:"pid"`
	Level    int    `json:"level"`
	Msg      string `json:"msg"`
	Time     string `json:"time"`
	V        int    `json:"v"`
	// Container is the webtask container; ReqID the request that wrote the
	// line ("" for output of the runtime itself).
	Container string `json:"container,omitempty"`
	ReqID     string `json:"req_id,omitempty"`
	// Webtask is the named webtask that wrote the line ("" when unnamed or
	// unknown).
	Webtask string `json:"webtask,omitempty"`
	// Stream is "stdout" or "stderr".
	Stream string `json:"stream,omitempty"`
	// Sandbox marks webtask output.
	Sandbox bool `json:"sandbox,omitempty"`
	// Dropped, on a daemon marker (name "webtask-logs"), counts the lines this reader lost.
	Dropped uint64 `json:"dropped,omitempty"`
}

// Package logstream fans webtask output out to real-time log readers: a
// per-container hub of bunyan-style records with bounded per-reader
// buffers. Publishing never blocks: a reader that falls behind loses lines
// and is told how many, in order, by a marker record.
package logstream

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/webtaskd/webtaskd/api/errdefs"
	"github.com/webtaskd/webtaskd/api/types"
)

// ErrClosed: the hub was closed (the daemon is shutting down;
// errdefs.ErrUnavailable).
var ErrClosed = errdefs.New(errdefs.ErrUnavailable, "the daemon is shutting down")

// Names of records (the webtask widget shows names matching
// /^sandbox-logs|^webtask-/).
const (
	// NameSandbox names webtask output.
	NameSandbox = "sandbox-logs"
	// NameDaemon names the hub's own notices (drop markers).
	NameDaemon = "webtask-logs"
)

// Record is one log event, a bunyan record (reference §1.4).
type Record = types.LogRecord

// Hub routes records of each container to its subscribers. It is safe for
// concurrent use.
type Hub struct {
	cfg Config

	mu     sync.Mutex
	topics map[string]*topic
	closed bool

	dropped atomic.Uint64 // records dropped for any reader
}

// topic is one container's subscribers and backlog. Guarded by Hub.mu.
type topic struct {
	subs      map[*Subscription]struct{}
	hist      []histEntry // oldest first
	histBytes int
	lastWrite time.Time
}

// histEntry is one backlog record and when it was published.
type histEntry struct {
	at  time.Time
	enc []byte
}

// Backlog selects the recent records a new subscription starts with: at
// most Max of them, and only those published at or after Since (zero:
// any age).
type Backlog struct {
	Max   int
	Since time.Time
}

// New returns a hub.
func New(cfg Config) *Hub {
	cfg.setDefaults()
	return &Hub{cfg: cfg, topics: map[string]*topic{}}
}

// Publish sends r to container's subscribers and backlog. It fills Name
// (NameSandbox when empty), Hostname, Pid, Level (30), Time, V and
// Container. It never blocks on readers.
func (h *Hub) Publish(container string, r Record) {
	now := h.cfg.Now()
	if r.Name == "" {
		r.Name = NameSandbox
	}
	if r.Level == 0 {
		r.Level = 30
	}
	r.Hostname, r.Pid, r.V, r.Container = h.cfg.Hostname, h.cfg.Pid, 0, container
	r.Time = now.UTC().Format(time.RFC3339Nano)
	enc, err := json.Marshal(&r)
	if err != nil {
		return // a Record of strings and numbers always encodes
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	t := h.topicLocked(container, now)
	t.lastWrite = now
	t.hist = append(t.hist, histEntry{at: now, enc: enc})
	t.histBytes += len(enc)
	for len(t.hist) > h.cfg.HistoryRecords || (t.histBytes > h.cfg.HistoryBytes && len(t.hist) > 1) {
		t.histBytes -= len(t.hist[0].enc)
		t.hist[0] = histEntry{}
		t.hist = t.hist[1:]
	}
	for s := range t.subs {
		s.push(enc)
	}
}

// topicLocked returns container's topic, creating it (and evicting the
// stalest reader-less backlog past MaxHistoryContainers).
func (h *Hub) topicLocked(container string, now time.Time) *topic {
	if t := h.topics[container]; t != nil {
		return t
	}
	if len(h.topics) >= h.cfg.MaxHistoryContainers {
		var victim string
		var oldest time.Time
		for name, t := range h.topics {
			if len(t.subs) == 0 && (victim == "" || t.lastWrite.Before(oldest)) {
				victim, oldest = name, t.lastWrite
			}
		}
		if victim != "" {
			delete(h.topics, victim)
		}
	}
	t := &topic{subs: map[*Subscription]struct{}{}, lastWrite: now}
	h.topics[container] = t
	return t
}

// Subscribe starts a reader of container: the records of its backlog that
// b selects first, then everything published from now on. Close the
// subscription when done. After Close of the hub it returns ErrClosed.
func (h *Hub) Subscribe(container string, b Backlog) (*Subscription, error) {
	s := &Subscription{
		hub:        h,
		container:  container,
		maxRecords: h.cfg.BufferRecords,
		maxBytes:   h.cfg.BufferBytes,
		ready:      make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	t := h.topicLocked(container, h.cfg.Now())
	if b.Max > 0 {
		from := max(len(t.hist)-b.Max, 0)
		for _, e := range t.hist[from:] {
			if !e.at.Before(b.Since) {
				s.push(e.enc)
			}
		}
	}
	t.subs[s] = struct{}{}
	return s, nil
}

// Close ends every subscription (their Done channels close) and refuses
// new ones; later Publish calls do nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for _, t := range h.topics {
		for s := range t.subs {
			close(s.done)
		}
		t.subs = nil
	}
	h.topics = map[string]*topic{}
}

// DroppedTotal counts the records dropped for slow readers (each reader's
// losses counted separately), since the hub was made.
func (h *Hub) DroppedTotal() uint64 { return h.dropped.Load() }

// Subscribers counts the live subscriptions of container.
func (h *Hub) Subscribers(container string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t := h.topics[container]; t != nil {
		return len(t.subs)
	}
	return 0
}

// Subscription is one reader's bounded queue.
type Subscription struct {
	hub        *Hub
	container  string
	maxRecords int
	maxBytes   int
	ready      chan struct{} // signalled (capacity 1) when something is queued
	done       chan struct{} // closed when the hub closes

	mu      sync.Mutex
	queue   []item
	bytes   int
	dropped uint64 // lost since the last queued item or marker
	total   uint64 // lost in all
	closed  bool
}

// item is one queued record; droppedBefore lines were lost just before it.
type item struct {
	enc           []byte
	droppedBefore uint64
}

// push queues enc or, when the queue is full, counts it as dropped.
func (s *Subscription) push(enc []byte) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	if len(s.queue) >= s.maxRecords || s.bytes+len(enc) > s.maxBytes {
		s.dropped++
		s.total++
		s.hub.dropped.Add(1)
	} else {
		s.queue = append(s.queue, item{enc: enc, droppedBefore: s.dropped})
		s.bytes += len(enc)
		s.dropped = 0
	}
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// Push queues enc, one record already encoded (a cluster peer's), for this
// reader only, under the same bounds as published records: when the queue
// is full it is dropped and counted. It never blocks.
func (s *Subscription) Push(enc []byte) { s.push(enc) }

// Ready is signalled when Take has something to return.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Done is closed when the hub closed (daemon shutdown).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Dropped counts the records this subscription lost in all.
func (s *Subscription) Dropped() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// Take returns the queued records, encoded, oldest first, each at most
// once. Where records were lost, a NameDaemon marker record saying how
// many stands in their place.
func (s *Subscription) Take() [][]byte {
	s.mu.Lock()
	q, trailing := s.queue, s.dropped
	s.queue, s.bytes, s.dropped = nil, 0, 0
	s.mu.Unlock()
	if len(q) == 0 && trailing == 0 {
		return nil
	}
	out := make([][]byte, 0, len(q)+1)
	for _, it := range q {
		if it.droppedBefore > 0 {
			out = append(out, s.marker(it.droppedBefore))
		}
		out = append(out, it.enc)
	}
	if trailing > 0 {
		out = append(out, s.marker(trailing))
	}
	return out
}

func (s *Subscription) marker(n uint64) []byte {
	h := s.hub
	r := Record{
		Name: NameDaemon, Hostname: h.cfg.Hostname, Pid: h.cfg.Pid, Level: 40,
		Msg:       fmt.Sprintf("[webtaskd: %d log lines dropped: this log reader is too slow]", n),
		Time:      h.cfg.Now().UTC().Format(time.RFC3339Nano),
		Container: s.container, Dropped: n,
	}
	enc, _ := json.Marshal(&r)
	return enc
}

// Close ends the subscription (idempotent).
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	h := s.hub
	h.mu.Lock()
	if t := h.topics[s.container]; t != nil {
		delete(t.subs, s)
	}
	h.mu.Unlock()
}

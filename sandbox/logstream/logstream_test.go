package logstream

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func decode(t *testing.T, encs [][]byte) []Record {
	t.Helper()
	out := make([]Record, len(encs))
	for i, e := range encs {
		if err := json.Unmarshal(e, &out[i]); err != nil {
			t.Fatalf("record %d %q: %v", i, e, err)
		}
	}
	return out
}

func fixedHub(cfg Config) *Hub {
	cfg.Hostname, cfg.Pid = "h", 7
	cfg.Now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	return New(cfg)
}

func TestPublishShapeAndOrder(t *testing.T) {
	h := fixedHub(Config{})
	s, err := h.Subscribe("c", Backlog{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, _ := h.Subscribe("other", Backlog{})
	defer other.Close()
	for i := 0; i < 1000; i++ {
		h.Publish("c", Record{Msg: fmt.Sprint("line ", i), ReqID: "r1", Stream: "stdout", Sandbox: true})
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not signalled")
	}
	encs := s.Take()
	recs := decode(t, encs)
	if len(recs) != 1000 {
		t.Fatalf("%d records", len(recs))
	}
	for i, r := range recs {
		if r.Msg != fmt.Sprint("line ", i) {
			t.Fatalf("record %d is %q", i, r.Msg)
		}
	}
	want := Record{Name: NameSandbox, Hostname: "h", Pid: 7, Level: 30, Msg: "line 0",
		Time: "2026-01-02T03:04:05Z", Container: "c", ReqID: "r1", Stream: "stdout", Sandbox: true}
	if recs[0] != want {
		t.Fatalf("record %+v\nwant   %+v", recs[0], want)
	}
	var raw map[string]any
	_ = json.Unmarshal(encs[0], &raw)
	if _, ok := raw["v"]; !ok {
		t.Fatalf("bunyan field v missing: %v", raw)
	}
	if got := other.Take(); got != nil {
		t.Fatalf("another container received %d records", len(got))
	}
	if s.Take() != nil {
		t.Fatal("Take returned records twice")
	}
}

// TestSlowReaderDropsAndMarks: a full buffer drops records without
// blocking the publisher; markers say how many, where they were lost.
func TestSlowReaderDropsAndMarks(t *testing.T) {
	h := fixedHub(Config{BufferRecords: 10})
	s, _ := h.Subscribe("c", Backlog{})
	defer s.Close()
	fast, _ := h.Subscribe("c", Backlog{})
	defer fast.Close()
	for i := 0; i < 25; i++ { // 10 kept, 15 dropped
		h.Publish("c", Record{Msg: fmt.Sprint(i)})
		if i%5 == 4 {
			if n := len(fast.Take()); n != 5 {
				t.Fatalf("the fast reader lost records: %d", n)
			}
		}
	}
	recs := decode(t, s.Take())
	if len(recs) != 11 || recs[9].Msg != "9" || recs[10].Name != NameDaemon || recs[10].Dropped != 15 {
		t.Fatalf("got %+v", recs)
	}
	// Later records follow; a gap in the middle is marked in place.
	h.Publish("c", Record{Msg: "25"})
	for i := 26; i < 40; i++ {
		h.Publish("c", Record{Msg: fmt.Sprint(i)})
	}
	recs = decode(t, s.Take())
	if len(recs) != 11 || recs[0].Msg != "25" || recs[9].Msg != "34" || recs[10].Dropped != 5 {
		t.Fatalf("got %+v", recs)
	}
	if s.Dropped() != 20 {
		t.Fatalf("Dropped = %d, want 20", s.Dropped())
	}
}

func TestMarkerPrecedesRecordAfterGap(t *testing.T) {
	h := fixedHub(Config{BufferRecords: 2})
	s, _ := h.Subscribe("c", Backlog{})
	defer s.Close()
	h.Publish("c", Record{Msg: "0"})
	h.Publish("c", Record{Msg: "1"})
	h.Publish("c", Record{Msg: "lost"})
	first := decode(t, s.Take()) // 0, 1, marker(1)
	if len(first) != 3 || first[2].Dropped != 1 {
		t.Fatalf("got %+v", first)
	}
	h.Publish("c", Record{Msg: "2"})
	h.Publish("c", Record{Msg: "3"})
	h.Publish("c", Record{Msg: "lost"})
	h.Publish("c", Record{Msg: "lost"})
	// Take frees the queue; the next record is preceded by no marker
	// because the trailing marker was already delivered by Take.
	recs := decode(t, s.Take())
	if len(recs) != 3 || recs[2].Dropped != 2 {
		t.Fatalf("got %+v", recs)
	}
	h.Publish("c", Record{Msg: "4"})
	h.Publish("c", Record{Msg: "5"})
	h.Publish("c", Record{Msg: "lost"})
	s.mu.Lock()
	s.queue, s.bytes = s.queue[:0], 0 // the reader consumed 4 and 5 elsewhere
	s.mu.Unlock()
	h.Publish("c", Record{Msg: "6"})
	recs = decode(t, s.Take())
	if len(recs) != 2 || recs[0].Dropped != 1 || recs[1].Msg != "6" {
		t.Fatalf("marker not placed before the record after the gap: %+v", recs)
	}
}

func TestBacklogAndCaps(t *testing.T) {
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h := New(Config{HistoryRecords: 5, MaxHistoryContainers: 2, Now: func() time.Time {
		clock = clock.Add(time.Second) // single goroutine: no lock needed
		return clock
	}})
	for i := 0; i < 8; i++ {
		h.Publish("c", Record{Msg: fmt.Sprint(i)})
	}
	s, _ := h.Subscribe("c", Backlog{Max: 3})
	recs := decode(t, s.Take())
	if len(recs) != 3 || recs[0].Msg != "5" || recs[2].Msg != "7" {
		t.Fatalf("tail 3 = %+v", recs)
	}
	s.Close()
	s, _ = h.Subscribe("c", Backlog{Max: 100})
	if n := len(s.Take()); n != 5 {
		t.Fatalf("backlog holds %d records, want the cap 5", n)
	}
	s.Close()
	// Only records published since a time (the clock ticks 1 s per call:
	// records 5, 6, 7 were published at +6 s, +7 s, +8 s).
	s, _ = h.Subscribe("c", Backlog{Max: 100, Since: time.Date(2026, 1, 2, 3, 4, 12, 0, time.UTC)})
	if recs := decode(t, s.Take()); len(recs) != 2 || recs[0].Msg != "6" {
		t.Fatalf("backlog since +7 s = %+v", recs)
	}
	s.Close()
	// A third container evicts the stalest backlog without readers.
	h.Publish("d", Record{Msg: "d"})
	h.Publish("e", Record{Msg: "e"})
	h.mu.Lock()
	_, hasC := h.topics["c"]
	n := len(h.topics)
	h.mu.Unlock()
	if hasC || n != 2 {
		t.Fatalf("topics: c kept %v, %d topics", hasC, n)
	}
	// Bytes cap.
	hb := fixedHub(Config{HistoryBytes: 600})
	for i := 0; i < 10; i++ {
		hb.Publish("c", Record{Msg: fmt.Sprintf("%0100d", i)})
	}
	s, _ = hb.Subscribe("c", Backlog{Max: 100})
	if n := len(s.Take()); n == 0 || n > 4 {
		t.Fatalf("byte-capped backlog holds %d records", n)
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	h := fixedHub(Config{})
	s, _ := h.Subscribe("c", Backlog{})
	h.Close()
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed by hub Close")
	}
	if _, err := h.Subscribe("c", Backlog{}); err != ErrClosed {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	h.Publish("c", Record{Msg: "late"}) // no panic, no effect
	s.Close()
	h.Close()
}

func TestUnsubscribe(t *testing.T) {
	h := fixedHub(Config{})
	s, _ := h.Subscribe("c", Backlog{})
	if h.Subscribers("c") != 1 {
		t.Fatal("not subscribed")
	}
	s.Close()
	s.Close()
	if h.Subscribers("c") != 0 {
		t.Fatal("still subscribed")
	}
	h.Publish("c", Record{Msg: "x"})
	if s.Take() != nil {
		t.Fatal("closed subscription received a record")
	}
}

// BenchmarkPublishStalledReader: publishing with a reader that never reads
// costs the same as with none (drops are counted, nothing blocks).
func BenchmarkPublishStalledReader(b *testing.B) {
	h := New(Config{})
	s, _ := h.Subscribe("c", Backlog{})
	defer s.Close()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.Publish("c", Record{Msg: "a log line of ordinary length", ReqID: "r", Sandbox: true})
	}
}

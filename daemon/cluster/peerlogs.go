package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/webtaskd/webtaskd/sandbox/logstream"
)

// maxPeerRecordBytes bounds one record read from a peer's stream.
const maxPeerRecordBytes = 1 << 20

// FollowPeers merges container's output on every other live member into
// push: one stream per peer (GET /api/cluster/logs/{c} with the peer
// credential), each starting with the records b selects of that peer's
// backlog. With follow, members that join are added and a dropped stream
// is opened again (from the time it dropped) every heartbeat interval
// until ctx ends; without, each peer sends its backlog and the channel
// closes once all have. It implements api.Cluster.
func (m *Member) FollowPeers(ctx context.Context, container string, b logstream.Backlog, follow bool, push func([]byte)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			open    = map[string]bool{}      // peer id: a stream is running
			dropped = map[string]time.Time{} // peer id: when its stream ended
		)
		defer wg.Wait()
		tick := time.NewTicker(m.cfg.HeartbeatInterval)
		defer tick.Stop()
		for {
			peers, changed := m.peers()
			for _, p := range peers {
				mu.Lock()
				if open[p.NodeID] {
					mu.Unlock()
					continue
				}
				from := b
				if at, ok := dropped[p.NodeID]; ok {
					from = logstream.Backlog{Max: max(b.Max, 1000), Since: at}
				}
				open[p.NodeID] = true
				mu.Unlock()
				wg.Add(1)
				go func(id, base string) {
					defer wg.Done()
					err := m.streamPeer(ctx, base, container, from, follow, push)
					if err != nil && ctx.Err() == nil {
						m.log.Debug("peer log stream ended", "peer", id, "err", err)
					}
					mu.Lock()
					delete(open, id)
					dropped[id] = m.now()
					mu.Unlock()
				}(p.NodeID, p.URL)
			}
			if !follow {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-tick.C:
			}
		}
	}()
	return done
}

// streamPeer reads one peer's stream of container into push until it ends
// (EOF, error, ctx).
func (m *Member) streamPeer(ctx context.Context, base, container string, b logstream.Backlog, follow bool, push func([]byte)) error {
	q := url.Values{}
	q.Set("max", strconv.Itoa(b.Max))
	if !b.Since.IsZero() {
		q.Set("since", strconv.FormatInt(b.Since.UnixNano(), 10))
	}
	if !follow {
		q.Set("follow", "0")
	}
	u := strings.TrimRight(base, "/") + "/api/cluster/logs/" + url.PathEscape(container) + "?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+m.cred)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", base, resp.StatusCode)
	}
	return readEvents(resp.Body, push)
}

// readEvents reads Server-Sent Events and pushes the data of each message
// event (not pings, not comments) as one record.
func readEvents(r interface{ Read([]byte) (int, error) }, push func([]byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxPeerRecordBytes)
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of an event
			if event == "" && len(data) > 0 {
				push(bytes.Clone(data))
			}
			event, data = "", data[:0]
		case line[0] == ':': // comment
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			// A record is one JSON line: an event of several data lines is
			// not one, and is dropped (it would break the reader's framing).
			if len(data) > 0 {
				event = "invalid"
			}
			data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		}
	}
	return sc.Err()
}

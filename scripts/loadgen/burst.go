package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

// burst times the first responses of a burst of never-seen containers on
// one daemon (default flags): k containers, one every gap, each call sent
// without waiting for the earlier ones. Their webtasks are created before
// the burst, the pool is at its resting size when it begins, and every
// round waits for the pool to be back at rest (it shrinks after a quiet
// spell) before the next.
func burst(args []string) error {
	fs := flag.NewFlagSet("burst", flag.ExitOnError)
	open := daemonFlags(fs)
	k := fs.Int("k", 30, "never-seen containers per burst")
	gap := fs.Duration("gap", 50*time.Millisecond, "time between two first calls")
	rounds := fs.Int("rounds", 1, "bursts")
	rest := fs.Int("rest", 4, "the pool's resting size (--pool-size)")
	_ = fs.Parse(args)
	d, err := open()
	if err != nil {
		return err
	}
	var all []time.Duration
	served := map[string]int{}
	var perRound []dist
	var order [][]float64
	for r := range *rounds {
		names := make([]string, *k)
		for i := range names {
			names[i] = fmt.Sprintf("burst-%d-%d-%d", os.Getpid(), r, i)
			if err := d.do("PUT", "/api/webtask/"+names[i]+"/hello", map[string]string{"code": helloCode}, nil); err != nil {
				return err
			}
		}
		if err := d.waitPoolRest(*rest); err != nil {
			return err
		}
		lat := make([]time.Duration, *k)
		kinds := make([]string, *k)
		errs := make([]error, *k)
		var wg sync.WaitGroup
		tick := time.NewTicker(*gap)
		for i, name := range names {
			if i > 0 {
				<-tick.C
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.Now()
				errs[i] = get(d.base+"/api/run/"+name+"/hello", &kinds[i])
				lat[i] = time.Since(t)
			}()
		}
		tick.Stop()
		wg.Wait()
		for i := range names {
			if errs[i] != nil {
				return errs[i]
			}
			served[kinds[i]]++
		}
		ms := make([]float64, len(lat))
		for i, l := range lat {
			ms[i] = float64(l.Microseconds()) / 1000
		}
		order = append(order, ms)
		all = append(all, lat...)
		perRound = append(perRound, summarize(append([]time.Duration(nil), lat...)))
		// Free the burst's sandboxes: the next round starts from rest.
		var list []struct {
			ID string `json:"id"`
		}
		if err := d.do("GET", "/api/admin/sandboxes", nil, &list); err != nil {
			return err
		}
		for _, s := range list {
			_ = d.do("DELETE", "/api/admin/sandboxes/"+s.ID, nil, nil)
		}
	}
	out := summarize(all)
	var maxMS float64
	if len(all) > 0 {
		maxMS = float64(all[len(all)-1].Microseconds()) / 1000
	}
	return emit(burstResult{Containers: *k, GapMS: gap.Milliseconds(), Rounds: perRound, All: out, MaxMS: maxMS, Served: served, Order: order})
}

// burstResult is what burst prints (read back by report).
type burstResult struct {
	Containers int            `json:"containers"`
	GapMS      int64          `json:"gap_ms"`
	Rounds     []dist         `json:"rounds"`
	All        dist           `json:"all"`
	MaxMS      float64        `json:"max_ms"`
	Served     map[string]int `json:"served"`
	// Order is each round's first responses in arrival order (ms).
	Order [][]float64 `json:"order_ms"`
}

// waitPoolRest waits until the pool is back at its resting size: target
// and ready both rest (bounded: the pool shrinks after 10 s without
// never-seen containers).
func (d *daemon) waitPoolRest(rest int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st status
		if err := d.do("GET", "/api/admin/status", nil, &st); err != nil {
			return err
		}
		if st.Fleet.PoolTarget == rest && st.Fleet.PoolReady == rest {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pool not back at rest (%d) within 60s: target %d, ready %d", rest, st.Fleet.PoolTarget, st.Fleet.PoolReady)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

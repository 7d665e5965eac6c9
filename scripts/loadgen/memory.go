package main

import (
	"flag"
	"fmt"
	"sort"
	"sync"
	"time"
)

// memory starts k warm containers, waits until they are idle (frozen),
// and reports the memory charged to each sandbox's cgroup and to the
// parent cgroup.
func memory(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ExitOnError)
	open := daemonFlags(fs)
	k := fs.Int("k", 200, "warm containers to start")
	settle := fs.Duration("settle", 3*time.Second, "idle time before measuring")
	stable := fs.Duration("stable", 0, "then wait (at most this long) until the fleet's memory stops falling: the kernel merging pages (--share-pages)")
	_ = fs.Parse(args)
	d, err := open()
	if err != nil {
		return err
	}
	var before status
	if err := d.do("GET", "/api/admin/status", nil, &before); err != nil {
		return err
	}
	began := time.Now()
	sem := make(chan struct{}, 4)
	errs := make(chan error, *k)
	var wg sync.WaitGroup
	for i := range *k {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := fmt.Sprintf("mem-%d", i)
			if err := d.do("PUT", "/api/webtask/"+c+"/hello", map[string]string{"code": helloCode}, nil); err != nil {
				errs <- err
				return
			}
			if err := get(d.base+"/api/run/"+c+"/hello", nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	started := time.Since(began)
	time.Sleep(*settle) // let them go idle and freeze: this is what is measured
	waited, err := waitStable(d, *stable)
	if err != nil {
		return err
	}
	var list []struct {
		ID string `json:"id"`
	}
	if err := d.do("GET", "/api/admin/sandboxes", nil, &list); err != nil {
		return err
	}
	var per []float64
	for _, s := range list {
		var info struct {
			Cgroup struct {
				MemoryBytes uint64 `json:"memory_bytes"`
			} `json:"cgroup"`
		}
		if err := d.do("GET", "/api/admin/sandboxes/"+s.ID, nil, &info); err != nil {
			return err
		}
		per = append(per, float64(info.Cgroup.MemoryBytes)/(1<<20))
	}
	sort.Float64s(per)
	var st status
	if err := d.do("GET", "/api/admin/status", nil, &st); err != nil {
		return err
	}
	// Every sandbox must still answer, warm.
	warmOK := 0
	for i := range *k {
		var served string
		if err := get(fmt.Sprintf("%s/api/run/mem-%d/hello", d.base, i), &served); err == nil && served == "warm" {
			warmOK++
		}
	}
	var fleetMiB float64
	var ooms uint64
	if st.Fleet.Fleet != nil {
		fleetMiB = float64(st.Fleet.Fleet.MemoryBytes) / (1 << 20)
		ooms = st.Fleet.Fleet.OOMKills
	}
	mean := fleetMiB / float64(len(list))
	return emit(map[string]any{
		"sandboxes": len(list), "per_sandbox_mib_p50": per[len(per)/2], "per_sandbox_mib_max": per[len(per)-1],
		"fleet_mib": fleetMiB, "fleet_mib_per_sandbox": mean, "fit_in_4gib": int(4096 / mean),
		"states": st.Fleet.Sandboxes, "still_warm": warmOK, "oom_kills": ooms,
		"settle_s": settle.Seconds(), "stable_after_s": waited.Seconds(), "started_s": started.Seconds(),
	})
}

// waitStable polls the fleet's memory every 5 s until it fell by less than
// 1 % over the last 15 s (the kernel's merging walks every sandbox's pages
// in passes of tens of seconds), at most max; it returns how long it waited.
func waitStable(d *daemon, max time.Duration) (time.Duration, error) {
	began := time.Now()
	var seen []uint64
	for time.Since(began) < max {
		var st status
		if err := d.do("GET", "/api/admin/status", nil, &st); err != nil {
			return 0, err
		}
		if st.Fleet.Fleet == nil {
			return 0, fmt.Errorf("the daemon reports no fleet memory")
		}
		now := st.Fleet.Fleet.MemoryBytes
		if n := len(seen); n >= 3 && now >= seen[n-3]-seen[n-3]/100 {
			break
		}
		seen = append(seen, now)
		time.Sleep(5 * time.Second)
	}
	return time.Since(began), nil
}

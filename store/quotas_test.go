package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

// TestQuotas: a write past a container's quota is ErrDenied saying which
// quota, and stores nothing; replacing an existing row and other
// containers are not refused.
func TestQuotas(t *testing.T) { bothDialects(t, testQuotas) }

func testQuotas(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.openWith(t, Options{Quotas: Quotas{MaxWebtasks: 2, MaxCronJobs: 1, MaxStorageBytes: 20}})
	defer s.Close()
	for _, n := range []string{"a", "b"} {
		if _, err := s.PutWebtask(ctx, sample("q", n)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.PutWebtask(ctx, sample("q", "c"))
	if !errors.Is(err, errdefs.ErrDenied) || !errors.Is(err, ErrQuota) {
		t.Fatalf("third webtask: %v, want the quota", err)
	}
	if _, err := s.GetWebtask(ctx, "q", "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused webtask was stored: %v", err)
	}
	if _, err := s.PutWebtask(ctx, sample("q", "a")); err != nil {
		t.Errorf("replacing a webtask at the quota: %v", err)
	}
	if _, err := s.PutWebtask(ctx, sample("other", "c")); err != nil {
		t.Errorf("another container: %v", err)
	}

	if _, err := s.PutCronJob(ctx, &CronJob{Container: "q", Name: "a", Schedule: "* * * * *", TZ: "UTC", State: "active"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCronJob(ctx, &CronJob{Container: "q", Name: "b", Schedule: "* * * * *", TZ: "UTC", State: "active"}); !errors.Is(err, ErrQuota) {
		t.Fatalf("second cron job: %v, want the quota", err)
	}
	if _, err := s.GetCronJob(ctx, "q", "b"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the refused cron job was stored: %v", err)
	}

	if _, err := s.PutData(ctx, "q", "a", `{"x":"0123456789"}`, PutDataOptions{Force: true}); err != nil { // 18 bytes
		t.Fatal(err)
	}
	if _, err := s.PutData(ctx, "q", "b", `{"y":1}`, PutDataOptions{Force: true}); !errors.Is(err, ErrQuota) {
		t.Fatalf("storage past the quota: %v", err)
	}
	if d, err := s.GetData(ctx, "q", "b"); err != nil || d.Etag != 0 {
		t.Errorf("the refused document was stored: %+v %v", d, err)
	}
	if _, err := s.PutData(ctx, "q", "a", `{"x":"01234567890"}`, PutDataOptions{Force: true}); err != nil {
		t.Errorf("replacing a document within the quota: %v", err)
	}
}

// TestQuotaOverrides: a container's quota overrides (its limits) replace
// the daemon's for that container only; removing them restores the
// daemon's.
func TestQuotaOverrides(t *testing.T) { bothDialects(t, testQuotaOverrides) }

func testQuotaOverrides(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := e.openWith(t, Options{Quotas: Quotas{MaxWebtasks: 1}})
	defer s.Close()
	if _, err := s.PutLimits(ctx, ContainerLimits{Container: "big", Quotas: Quotas{MaxWebtasks: 3}}); err != nil {
		t.Fatal(err)
	}
	l, err := s.GetLimits(ctx, "big")
	if err != nil || l.Quotas.MaxWebtasks != 3 {
		t.Fatalf("limits of big = %+v, %v", l, err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if _, err := s.PutWebtask(ctx, sample("big", n)); err != nil {
			t.Fatalf("webtask %s within big's override: %v", n, err)
		}
	}
	if _, err := s.PutWebtask(ctx, sample("big", "d")); !errors.Is(err, ErrQuota) {
		t.Fatalf("past big's override: %v", err)
	}
	if _, err := s.PutWebtask(ctx, sample("small", "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWebtask(ctx, sample("small", "b")); !errors.Is(err, ErrQuota) {
		t.Fatalf("another container keeps the daemon's quota: %v", err)
	}
	if err := s.DeleteLimits(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWebtask(ctx, sample("big", "d")); !errors.Is(err, ErrQuota) {
		t.Fatalf("without overrides big is at the daemon's quota: %v", err)
	}
}

// TestQuotasExactAcrossStores: goroutines of two stores on one database
// (two daemons of a cluster) race to create distinct webtasks, cron jobs
// and storage documents in containers whose quotas allow n of each:
// exactly n of each are stored, and every other write is refused with the
// quota error. Each race runs in several fresh containers (a lost race
// needs two writes at the quota's edge at once).
func TestQuotasExactAcrossStores(t *testing.T) { bothDialects(t, testQuotasExactAcrossStores) }

func testQuotasExactAcrossStores(t *testing.T) {
	const n, perStore, rounds = 2, 4, 8
	const doc = `{"x":"0123456789"}` // 18 bytes
	e := newEnv(t)
	ctx := context.Background()
	a := e.open(t)
	defer a.Close()
	b := e.open(t)
	defer b.Close()
	names := make([]string, 2*perStore)
	for i := range names {
		names[i] = fmt.Sprintf("t%d", i)
	}
	writes := []struct {
		what   string
		quotas Quotas
		// write stores name in container c through s.
		write func(s *Store, c, name string) error
		// stored counts what c holds.
		stored func(c string) int
	}{
		{"webtasks", Quotas{MaxWebtasks: n}, func(s *Store, c, name string) error {
			_, err := s.PutWebtask(ctx, sample(c, name))
			return err
		}, func(c string) int {
			ws, err := a.ListWebtasks(ctx, ListOptions{Container: c})
			if err != nil {
				t.Fatal(err)
			}
			return len(ws)
		}},
		{"cron jobs", Quotas{MaxCronJobs: n}, func(s *Store, c, name string) error {
			_, err := s.PutCronJob(ctx, &CronJob{Container: c, Name: name, Schedule: "* * * * *", TZ: "UTC", State: CronActive})
			return err
		}, func(c string) int {
			js, err := a.ListCronJobs(ctx, CronListOptions{Container: c})
			if err != nil {
				t.Fatal(err)
			}
			return len(js)
		}},
		{"documents", Quotas{MaxStorageBytes: n * int64(len(doc))}, func(s *Store, c, name string) error {
			_, err := s.PutData(ctx, c, name, doc, PutDataOptions{Force: true})
			return err
		}, func(c string) int {
			stored := 0
			for _, name := range names {
				d, err := a.GetData(ctx, c, name)
				if err != nil {
					t.Fatal(err)
				}
				if d.Doc != "" {
					stored++
				}
			}
			return stored
		}},
	}
	for wi, w := range writes {
		for r := 0; r < rounds; r++ {
			c := fmt.Sprintf("q%d-%d", wi, r)
			if _, err := a.PutLimits(ctx, ContainerLimits{Container: c, Quotas: w.quotas}); err != nil {
				t.Fatal(err)
			}
			if w.quotas.MaxWebtasks == 0 {
				// The cron jobs and documents belong to webtasks.
				for _, name := range names {
					if _, err := a.PutWebtask(ctx, sample(c, name)); err != nil {
						t.Fatal(err)
					}
				}
			}
			var wg sync.WaitGroup
			var ok, refused atomic.Int32
			start := make(chan struct{})
			for i, name := range names {
				s := []*Store{a, b}[i%2]
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					err := w.write(s, c, name)
					switch {
					case err == nil:
						ok.Add(1)
					case errors.Is(err, ErrQuota):
						refused.Add(1)
					default:
						t.Errorf("%s in %s: %v", w.what, c, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if ok.Load() != n || refused.Load() != int32(len(names)-n) {
				t.Errorf("%s in %s: %d written and %d refused, want %d and %d", w.what, c, ok.Load(), refused.Load(), n, len(names)-n)
			}
			if got := w.stored(c); got != n {
				t.Errorf("%s in %s: %d stored, want the quota's %d", w.what, c, got, n)
			}
		}
	}
}

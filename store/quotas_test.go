package store

import (
	"context"
	"errors"
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

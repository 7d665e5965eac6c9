package store

import (
	"context"
	"errors"
	"testing"

	"github.com/webtaskd/webtaskd/api/types"
)

func TestContainerLimitsRoundTrip(t *testing.T) { bothDialects(t, testContainerLimitsRoundTrip) }

func testContainerLimitsRoundTrip(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.GetLimits(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetLimits before put: %v, want ErrNotFound", err)
	}
	want := ContainerLimits{Container: "c1", Limits: types.Limits{MemoryMB: 64, CPUs: 0.5, Pids: 32, ExecTimeoutMS: 1500, MaxConcurrency: 4}}
	if _, err := s.PutLimits(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetLimits(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	got.UpdatedAt = want.UpdatedAt
	if *got != want {
		t.Fatalf("GetLimits = %+v, want %+v", *got, want)
	}
	want.MemoryMB, want.CPUs = 128, 0
	if _, err := s.PutLimits(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetLimits(ctx, "c1"); got.MemoryMB != 128 || got.CPUs != 0 || got.Pids != 32 {
		t.Fatalf("after replace: %+v", got)
	}
	if err := s.DeleteLimits(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteLimits(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.PutLimits(ctx, ContainerLimits{Container: "c2", Limits: types.Limits{Pids: -1}}); err == nil {
		t.Fatal("negative pids accepted by the schema")
	}
}

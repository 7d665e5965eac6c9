package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestDataGetPutEtags(t *testing.T) { bothDialects(t, testDataGetPutEtags) }

func testDataGetPutEtags(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()

	if _, err := s.GetData(ctx, "c", "n"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetData of a missing webtask = %v, want ErrNotFound", err)
	}
	if _, err := s.PutData(ctx, "c", "n", `{}`, PutDataOptions{Force: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("PutData of a missing webtask = %v, want ErrNotFound", err)
	}
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	d, err := s.GetData(ctx, "c", "n")
	if err != nil || d != (Data{}) {
		t.Fatalf("GetData before any write = %+v, %v; want empty, etag 0", d, err)
	}
	// Expecting "nothing stored" (etag 0) succeeds once.
	d, err = s.PutData(ctx, "c", "n", `{"a":1}`, PutDataOptions{ExpectEtag: 0})
	if err != nil || d.Etag != 1 || d.Doc != `{"a":1}` {
		t.Fatalf("first PutData = %+v, %v", d, err)
	}
	_, err = s.PutData(ctx, "c", "n", `{"a":2}`, PutDataOptions{ExpectEtag: 0})
	var ce *DataConflictError
	if !errors.As(err, &ce) || !errors.Is(err, ErrDataConflict) {
		t.Fatalf("stale PutData = %v, want a DataConflictError", err)
	}
	if ce.Current.Etag != 1 || ce.Current.Doc != `{"a":1}` {
		t.Fatalf("conflict carries %+v, want the current document", ce.Current)
	}
	if d, err = s.PutData(ctx, "c", "n", `{"a":2}`, PutDataOptions{ExpectEtag: 1}); err != nil || d.Etag != 2 {
		t.Fatalf("PutData with the current etag = %+v, %v", d, err)
	}
	if d, err = s.PutData(ctx, "c", "n", `[3]`, PutDataOptions{Force: true, ExpectEtag: 99}); err != nil || d.Etag != 3 {
		t.Fatalf("forced PutData = %+v, %v", d, err)
	}
	// Clearing keeps counting, so an old etag never matches again.
	if d, err = s.PutData(ctx, "c", "n", "null", PutDataOptions{ExpectEtag: 3}); err != nil || d.Etag != 4 || d.Doc != "" {
		t.Fatalf("clearing PutData = %+v, %v", d, err)
	}
	if d, err = s.GetData(ctx, "c", "n"); err != nil || d.Etag != 4 || d.Doc != "" {
		t.Fatalf("GetData after clear = %+v, %v", d, err)
	}
	if _, err := s.PutData(ctx, "c", "n", `{"x":`, PutDataOptions{Force: true}); !errors.Is(err, ErrDataInvalid) {
		t.Fatalf("invalid JSON = %v, want ErrDataInvalid", err)
	}
	big := `"` + strings.Repeat("x", MaxDataBytes) + `"`
	if _, err := s.PutData(ctx, "c", "n", big, PutDataOptions{Force: true}); !errors.Is(err, ErrDataTooLarge) {
		t.Fatalf("oversized document = %v, want ErrDataTooLarge", err)
	}
	if d, err = s.GetData(ctx, "c", "n"); err != nil || d.Etag != 4 {
		t.Fatalf("failed writes changed the data: %+v, %v", d, err)
	}
}

func TestDataSurvivesReopenAndDiesWithWebtask(t *testing.T) {
	bothDialects(t, testDataSurvivesReopenAndDiesWithWebtask)
}

func testDataSurvivesReopenAndDiesWithWebtask(t *testing.T) {
	e := newEnv(t)
	s := e.open(t)
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutData(ctx, "c", "n", `{"keep":true}`, PutDataOptions{}); err != nil {
		t.Fatal(err)
	}
	// An update of the webtask keeps its data.
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = e.open(t)
	defer s.Close()
	d, err := s.GetData(ctx, "c", "n")
	if err != nil || d.Doc != `{"keep":true}` || d.Etag != 1 {
		t.Fatalf("after reopen = %+v, %v", d, err)
	}
	if err := s.DeleteWebtask(ctx, "c", "n"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	if d, err := s.GetData(ctx, "c", "n"); err != nil || d != (Data{}) {
		t.Fatalf("a re-created webtask sees old data: %+v, %v", d, err)
	}
}

// TestDataConcurrentCompareAndSet: many writers holding the same etag,
// exactly one wins.
func TestDataConcurrentCompareAndSet(t *testing.T) { bothDialects(t, testDataConcurrentCompareAndSet) }

func testDataConcurrentCompareAndSet(t *testing.T) {
	s := openTestStore(t)
	ctx := context.Background()
	if _, err := s.PutWebtask(ctx, sample("c", "n")); err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := s.PutData(ctx, "c", "n", fmt.Sprintf(`{"w":%d}`, i), PutDataOptions{})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrDataConflict):
				conflicts++
			default:
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 {
		t.Fatalf("wins %d, conflicts %d; want 1 and %d", wins, conflicts, writers-1)
	}
}

package store

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestWALStaysBounded writes 4 MiB of webtasks and data documents: the
// auto-checkpoint runs after every kind of write (PutWebtask's RETURNING
// statement included), so the WAL file never holds much more than
// wal_autocheckpoint pages plus one write.
func TestWALStaysBounded(t *testing.T) {
	e, s := openTestEnv(t)
	ctx := context.Background()
	wal := filepath.Join(e.dir, "webtaskd.db-wal")
	const bound = walAutocheckpointPages*4096 + 2*(64<<10) + 64<<10 // pages + one write + slack
	for i := 0; i < 64; i++ {
		w := sample("c", "w"+strconv.Itoa(i))
		w.Code = randomCode(t, 64<<10)
		if _, err := s.PutWebtask(ctx, w); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutData(ctx, "c", w.Name, `"`+randomCode(t, 8<<10)+`"`, PutDataOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(wal)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > bound {
			t.Fatalf("after %d writes the WAL is %d bytes, more than %d", i+1, fi.Size(), bound)
		}
	}
}

package sandbox

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestKSMPace: ksmd scans fast from a boot until two more full passes
// ended, slow otherwise (no root: a directory stands for the KSM controls).
func TestKSMPace(t *testing.T) {
	dir := t.TempDir()
	set := func(name string, v int) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() int {
		b, err := os.ReadFile(filepath.Join(dir, "pages_to_scan"))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	set("full_scans", 10)
	set("pages_to_scan", 7)
	p := &ksmPace{dir: dir, log: slog.New(slog.NewTextHandler(io.Discard, nil))}

	p.step()
	if got := pages(); got != ksmSlowPages {
		t.Fatalf("no boot yet: pages_to_scan %d, want %d", got, ksmSlowPages)
	}
	for _, s := range []struct {
		boot  bool
		scans int
		want  int
	}{
		{true, 10, ksmFastPages}, // a boot: fast
		{false, 11, ksmFastPages},
		{false, 12, ksmSlowPages}, // two passes after it: slow
		{false, 13, ksmSlowPages},
		{true, 13, ksmFastPages},
		{true, 14, ksmFastPages}, // a boot during the fast pace extends it
		{false, 15, ksmFastPages},
		{false, 16, ksmSlowPages},
	} {
		if s.boot {
			p.booted()
		}
		set("full_scans", s.scans)
		p.step()
		if got := pages(); got != s.want {
			t.Fatalf("full_scans %d (boot %v): pages_to_scan %d, want %d", s.scans, s.boot, got, s.want)
		}
	}
	// Unreadable controls: the pace stays as it was.
	os.Remove(filepath.Join(dir, "full_scans"))
	p.booted()
	p.step()
	if got := pages(); got != ksmSlowPages {
		t.Fatalf("without full_scans: pages_to_scan %d, want it unchanged", got)
	}
}

package keyring

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/webtaskd/webtaskd/api/errdefs"
)

func openTemp(t *testing.T) (*Ring, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	r, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r, dir
}

func TestFirstKeySetCreated(t *testing.T) {
	r, dir := openTemp(t)
	cur := r.Current()
	if !kidRE.MatchString(cur.ID) {
		t.Fatalf("kid %q is not 16 hex chars", cur.ID)
	}
	if len(cur.SigningKey) != 32 || len(cur.SealingKey) != 32 {
		t.Fatalf("key lengths %d/%d", len(cur.SigningKey), len(cur.SealingKey))
	}
	if bytes.Equal(cur.SigningKey, cur.SealingKey) {
		t.Fatal("signing and sealing keys are equal")
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode %#o, want 0700", fi.Mode().Perm())
	}
	got, err := r.Get(cur.ID)
	if err != nil || got.ID != cur.ID {
		t.Fatalf("Get(current) = %v, %v", got, err)
	}
	if _, err := r.Get("0000000000000000"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Get(unknown) err = %v, want ErrUnknownKey", err)
	}
}

func TestSealRoundTrip(t *testing.T) {
	r, _ := openTemp(t)
	pt := []byte(`{"API_KEY":"s3cr3t"}`)
	ad := []byte("c1/hello")
	sealed, kid, err := r.Seal(pt, ad)
	if err != nil {
		t.Fatal(err)
	}
	if kid != r.Current().ID {
		t.Fatalf("kid %q, want current %q", kid, r.Current().ID)
	}
	if strings.Contains(sealed, "s3cr3t") || strings.Count(sealed, ".") != 1 {
		t.Fatalf("sealed value has unexpected shape: %q", sealed)
	}
	sealed2, _, _ := r.Seal(pt, ad)
	if sealed == sealed2 {
		t.Fatal("two seals of the same value are identical (nonce reuse)")
	}
	got, err := r.Unseal(sealed, kid, ad)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pt) {
		t.Fatalf("Unseal = %q, want %q", got, pt)
	}
}

func TestUnsealWrongADFails(t *testing.T) {
	r, _ := openTemp(t)
	sealed, kid, err := r.Seal([]byte("value-xyz"), []byte("c1/a"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Unseal(sealed, kid, []byte("c1/b"))
	if !errors.Is(err, ErrUnseal) {
		t.Fatalf("err = %v, want ErrUnseal", err)
	}
	if strings.Contains(err.Error(), "value-xyz") {
		t.Fatal("error message leaks plaintext")
	}
}

func TestUnsealTamperFails(t *testing.T) {
	r, _ := openTemp(t)
	ad := []byte("c/n")
	sealed, kid, err := r.Seal([]byte("some secret data"), ad)
	if err != nil {
		t.Fatal(err)
	}
	ctB64, nonceB64, _ := strings.Cut(sealed, ".")
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	cases := map[string]string{
		"ciphertext": flip(ctB64) + "." + nonceB64,
		"nonce":      ctB64 + "." + flip(nonceB64),
		"no dot":     ctB64 + nonceB64,
		"bad base64": "!!!." + nonceB64,
		"short":      ctB64[:4] + "." + nonceB64,
		"empty":      "",
	}
	for name, s := range cases {
		if _, err := r.Unseal(s, kid, ad); !errors.Is(err, ErrUnseal) {
			t.Errorf("%s: err = %v, want ErrUnseal", name, err)
		}
	}
	if _, err := r.Unseal(sealed, "ffffffffffffffff", ad); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("unknown kid: err = %v, want ErrUnknownKey", err)
	}
}

func TestFileModes(t *testing.T) {
	r, dir := openTemp(t)
	if _, err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			t.Errorf("leftover temp file %s", de.Name())
		}
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %#o, want 0600", de.Name(), fi.Mode().Perm())
		}
		n++
	}
	if n != 3 { // two key sets + current
		t.Fatalf("dir holds %d files, want 3", n)
	}
}

func TestRefusesWideMode(t *testing.T) {
	r, dir := openTemp(t)
	kid := r.Current().ID
	p := filepath.Join(dir, kid+".json")
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("Open with 0644 key file: err = %v, want ErrInsecureKeyFile", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "current"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("Open with 0640 current file: err = %v, want ErrInsecureKeyFile", err)
	}
}

func TestRefusesCorrupt(t *testing.T) {
	r, dir := openTemp(t)
	kid := r.Current().ID
	if err := os.WriteFile(filepath.Join(dir, kid+".json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	// current naming a missing kid
	dir2 := filepath.Join(t.TempDir(), "k2")
	if _, err := Open(dir2); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir2, "current"), []byte("0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir2); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestReopenSameKeys(t *testing.T) {
	r, dir := openTemp(t)
	old := r.Current()
	sealed, kid, err := r.Seal([]byte("persist me"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	cur := r2.Current()
	if cur.ID != old.ID || !bytes.Equal(cur.SigningKey, old.SigningKey) || !bytes.Equal(cur.SealingKey, old.SealingKey) || !cur.CreatedAt.Equal(old.CreatedAt) {
		t.Fatal("reopened ring has different current key set")
	}
	got, err := r2.Unseal(sealed, kid, []byte("ad"))
	if err != nil || string(got) != "persist me" {
		t.Fatalf("Unseal after reopen = %q, %v", got, err)
	}
}

func TestMissingCurrentRecovers(t *testing.T) {
	r, dir := openTemp(t)
	kid := r.Current().ID
	if err := os.Remove(filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID != kid {
		t.Fatalf("current %q, want existing %q (no new key set)", r2.Current().ID, kid)
	}
}

func TestRotateKeepsOldKid(t *testing.T) {
	r, dir := openTemp(t)
	old := r.Current().ID
	sealed, kid, err := r.Seal([]byte("before rotate"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	ks, err := r.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if ks.ID == old || r.Current().ID != ks.ID {
		t.Fatalf("rotate: new %q, current %q, old %q", ks.ID, r.Current().ID, old)
	}
	if _, err := r.Get(old); err != nil {
		t.Fatalf("Get(old) after rotate: %v", err)
	}
	if got, err := r.Unseal(sealed, kid, []byte("ad")); err != nil || string(got) != "before rotate" {
		t.Fatalf("Unseal old after rotate = %q, %v", got, err)
	}
	_, kid2, _ := r.Seal([]byte("x"), nil)
	if kid2 != ks.ID {
		t.Fatalf("new seal uses kid %q, want %q", kid2, ks.ID)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Current().ID != ks.ID {
		t.Fatalf("reopen current %q, want %q", r2.Current().ID, ks.ID)
	}
	list := r2.List()
	if len(list) != 2 || list[0].ID != old || list[0].Current || !list[1].Current || list[1].ID != ks.ID {
		t.Fatalf("List = %+v", list)
	}
}

func TestRetire(t *testing.T) {
	r, dir := openTemp(t)
	old := r.Current().ID
	sealed, _, err := r.Seal([]byte("old secret"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Retire(old); !errors.Is(err, ErrRetireCurrent) {
		t.Fatalf("Retire(current) err = %v, want ErrRetireCurrent", err)
	}
	if _, err := r.Get(old); err != nil {
		t.Fatalf("refused retire still changed state: %v", err)
	}
	if err := r.Retire("0000000000000000"); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Retire(unknown) err = %v", err)
	}
	if _, err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := r.Retire(old); err != nil {
		t.Fatal(err)
	}
	if err := r.Retire(old); err != nil {
		t.Fatalf("second Retire: %v", err)
	}
	if _, err := r.Get(old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Get(retired) err = %v, want ErrUnknownKey", err)
	}
	if _, err := r.Unseal(sealed, old, []byte("ad")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Unseal(retired) err = %v, want ErrUnknownKey", err)
	}
	// Persisted across reopen.
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r2.Get(old); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after reopen Get(retired) err = %v", err)
	}
	var found bool
	for _, ki := range r2.List() {
		if ki.ID == old {
			found = true
			if !ki.Retired || ki.Current {
				t.Fatalf("List entry %+v", ki)
			}
		}
	}
	if !found {
		t.Fatal("retired kid missing from List")
	}
}

func TestConcurrentUse(t *testing.T) {
	r, _ := openTemp(t)
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				s, kid, err := r.Seal([]byte("v"), []byte("ad"))
				if err != nil {
					errc <- err
					return
				}
				if _, err := r.Unseal(s, kid, []byte("ad")); err != nil {
					errc <- err
					return
				}
				_ = r.Current()
			}
		}()
	}
	for i := 0; i < 3; i++ {
		if _, err := r.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
}

func TestMissingReadsOnly(t *testing.T) {
	r, dir := openTemp(t)
	kid := r.Current().ID
	got, err := Missing(dir, []string{kid, "00000000000000ff", kid, "../../etc/x", "00000000000000ff"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"../../etc/x", "00000000000000ff"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Missing = %q, want %q", got, want)
	}
	gone := filepath.Join(t.TempDir(), "keys")
	if got, err := Missing(gone, []string{kid}); err != nil || len(got) != 1 || got[0] != kid {
		t.Fatalf("Missing(no dir) = %q, %v", got, err)
	}
	if _, err := os.Stat(gone); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Missing created the directory: %v", err)
	}
}

func TestRotateOnFullDiskIsNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED: this test mounts a tmpfs and needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	r, err := Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 64; i++ { // at most 64 KiB: the volume's size
		if _, err := filler.Write(make([]byte, 1024)); err != nil {
			break
		}
	}
	filler.Close()
	_, err = r.Rotate()
	if !errors.Is(err, errdefs.ErrNoSpace) {
		t.Fatalf("rotate on a full disk: %v, want errdefs.ErrNoSpace", err)
	}
	var de *errdefs.Error
	if !errors.As(err, &de) || !strings.Contains(de.Error(), "storage is full") {
		t.Fatalf("no caller-facing message in %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(); err != nil {
		t.Fatalf("rotate after space was freed: %v", err)
	}
}

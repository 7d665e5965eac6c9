package backup

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	pass := []byte("correct horse battery")
	files := []File{{Name: "webtaskd.db", Mode: 0o600, Data: []byte("SQLite format 3\x00 secret-row")},
		{Name: "keys/0123456789abcdef.json", Mode: 0o600, Data: []byte(`{"signing_key":"S2V5TWF0ZXJpYWw="}`)}}
	var buf bytes.Buffer
	if err := Seal(&buf, pass, files); err != nil {
		t.Fatal(err)
	}
	for _, clear := range []string{"SQLite format 3", "secret-row", "S2V5TWF0ZXJpYWw=", "signing_key", "webtaskd.db"} {
		if bytes.Contains(buf.Bytes(), []byte(clear)) {
			t.Errorf("archive holds %q in clear", clear)
		}
	}
	got, err := Open(bytes.NewReader(buf.Bytes()), pass)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "webtaskd.db" || !bytes.Equal(got[1].Data, files[1].Data) || got[1].Mode != 0o600 {
		t.Fatalf("opened %+v", got)
	}
	if _, err := Open(bytes.NewReader(buf.Bytes()), []byte("wrong horse battery")); !errors.Is(err, ErrPassphrase) {
		t.Errorf("wrong passphrase: %v", err)
	}
	altered := bytes.Clone(buf.Bytes())
	altered[len(altered)-1] ^= 1
	if _, err := Open(bytes.NewReader(altered), pass); !errors.Is(err, ErrPassphrase) {
		t.Errorf("altered archive: %v", err)
	}
	if _, err := Open(bytes.NewReader([]byte("SQLite format 3")), pass); !errors.Is(err, ErrNotArchive) {
		t.Errorf("not an archive: %v", err)
	}
	if err := Seal(&buf, []byte("short"), files); !errors.Is(err, ErrShortPassphrase) {
		t.Errorf("short passphrase: %v", err)
	}
	if err := Seal(&buf, pass, []File{{Name: "../etc/passwd"}}); err == nil {
		t.Error("a name leaving the directory was sealed")
	}
}

package daemon_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/webtaskd/webtaskd/daemon/daemontest"
)

// writeTestCert writes a self-signed certificate for 127.0.0.1 with serial
// to certFile and keyFile, and returns it.
func writeTestCert(t *testing.T, certFile, keyFile string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "webtaskd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestTLSServesReloadsAndLogsNoToken: with --tls-cert-file/--tls-key-file
// the API serves HTTPS with the test certificate (plain HTTP is refused), a
// reload serves the new certificate to new connections (a broken one keeps
// the old), and no token sent in a query (?key=) or header reaches the
// daemon's log, whatever the answer.
func TestTLSServesReloadsAndLogsNoToken(t *testing.T) {
	RequireRoot(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	cert1 := writeTestCert(t, certFile, keyFile, 1)
	cfg := Config(t)
	cfg.Sandbox.PoolSize = 0
	cfg.TLSCertFile = certFile
	if err := cfg.Validate(); err == nil {
		t.Fatal("a certificate without its key was accepted")
	}
	cfg.TLSKeyFile = keyFile
	var logs LogBuffer
	env := StartLogged(t, cfg, &logs)
	base := "https://" + env.D.Addr()

	get := func(trusted *x509.Certificate, path, header string) (*http.Response, error) {
		pool := x509.NewCertPool()
		pool.AddCert(trusted)
		c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", "Bearer "+header)
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(cert1, "/api/admin/status", env.Master)
	if err != nil || resp.StatusCode != 200 || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("HTTPS with the test certificate: %v %v", resp, err)
	}
	if r, err := http.Get("http://" + env.D.Addr() + "/healthz"); err == nil {
		r.Body.Close()
		if r.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}

	// Tokens in ?key= and in the header, on answers of every kind.
	bogus := "eyJhbGciOiJIUzI1NiJ9.eyJ0ZW4iOiJ4In0.bm90LWEtc2lnbmF0dXJl"
	for _, p := range []struct{ path, header string }{
		{"/api/webtask/nope/x?key=" + env.Master, ""},
		{"/api/logs/tenant/c?key=" + bogus, ""},
		{"/api/run/nope/x?key=" + env.Master, ""},
		{"/api/admin/status?key=" + bogus, ""},
		{"/api/webtask/nope/x", bogus},
		{"/api/no-such-route?key=" + env.Master, env.Master},
	} {
		if _, err := get(cert1, p.path, p.header); err != nil {
			t.Fatalf("GET %s: %v", p.path, err)
		}
	}

	// Reload: new connections get the new certificate; a broken pair
	// keeps it.
	cert2 := writeTestCert(t, certFile, keyFile, 2)
	if err := env.D.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	resp, err = get(cert2, "/healthz", "")
	if err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after reload: %v %v", resp, err)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := env.D.ReloadTLS(); err == nil {
		t.Fatal("a broken key reloaded")
	}
	if resp, err = get(cert2, "/healthz", ""); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a failed reload: %v %v", resp, err)
	}

	out := logs.Bytes()
	if !bytes.Contains(out, []byte("TLS certificate reloaded")) {
		t.Fatalf("the capture holds no request log: %s", out)
	}
	for _, tok := range []string{env.Master, bogus, strings.Split(env.Master, ".")[2]} {
		if bytes.Contains(out, []byte(tok)) {
			t.Errorf("a token reached the log: %.20s…", tok)
		}
	}
}

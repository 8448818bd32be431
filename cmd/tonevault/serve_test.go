package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/store"
)

type syncBuffer = testutil.SyncBuffer

const serveTestKey = "tvk_serve-test-key-not-secret"

// testConfig is a configuration with every port chosen by the kernel,
// HMAC-signed audit and no reachable Vault or PSP.
func testConfig(t *testing.T) (cfgPath, trail string) {
	return testConfigWith(t, t.TempDir(), "vault:\n  address: http://127.0.0.1:1\n", "hmac")
}

// testConfigWith writes it in dir with the given vault: section and
// audit signer.
func testConfigWith(t *testing.T, dir, vaultYAML, signer string) (cfgPath, trail string) {
	trail = filepath.Join(dir, "audit.jsonl")
	cfg := vaultYAML + fmt.Sprintf(`sip:
  trunks:
    carrier:
      listen: 127.0.0.1:0
    platform:
      listen: 127.0.0.1:0
media:
  port_min: 0
  port_max: 0
http:
  listen: 127.0.0.1:0
log:
  level: warn
audit:
  signer: %s
  path: %s
api:
  keys:
    - name: crm-test
      hash: %q
psp:
  addrs: []
  state_dir: %s
store:
  sqlite:
    path: %s
`, signer, trail, api.HashKey(serveTestKey), filepath.Join(dir, "psp"), filepath.Join(dir, "tonevault.db"))
	cfgPath = filepath.Join(dir, "tonevault.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, trail
}

// testStoreConfig is an SQLite store in a temporary directory.
func testStoreConfig(t *testing.T) store.Config {
	c := store.DefaultConfig()
	c.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	return c
}

// listeners waits for serve's listener lines and returns them by name.
func listeners(t *testing.T, out *syncBuffer, done <-chan int) map[string]string {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if s := out.String(); strings.Contains(s, "\nhttp ") {
			m := map[string]string{}
			for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
				f := strings.Fields(l)
				switch {
				case len(f) >= 3 && f[0] == "sip":
					m[f[1]] = f[2]
				case len(f) == 2 && f[0] == "http":
					m["http"] = f[1]
				}
			}
			return m
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited with %d before listening; output:\n%s", code, out.String())
		case <-deadline:
			t.Fatalf("serve did not print its listeners; output:\n%s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serveOnce runs serve on cfgPath until its listeners are up, stops it,
// and returns its log; an exit other than 0 fails the test.
func serveOnce(t *testing.T, cfgPath string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- serveContext(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()
	listeners(t, &stdout, done)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
	return stderr.String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServe(t *testing.T) {
	cfgPath, trail := testConfig(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- serveContext(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()
	l := listeners(t, &stdout, done)
	if l["carrier"] == "" || l["platform"] == "" || l["http"] == "" {
		t.Fatalf("listeners %v", l)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := get(t, "http://"+l["http"]+path); code != 200 {
			t.Errorf("%s = %d %s", path, code, body)
		}
	}
	code, metrics := get(t, "http://"+l["http"]+"/metrics")
	if code != 200 || !strings.Contains(metrics, "tonevault_sip_active_calls 0") {
		t.Errorf("/metrics = %d, without tonevault_sip_active_calls 0", code)
	}
	for _, m := range []string{`tonevault_media_faults_total{scope="session"} 0`, `tonevault_media_faults_total{scope="ring"} 0`, "tonevault_capture_faults_total 0"} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics without %s", m)
		}
	}

	// The API and the widget share the HTTP listener.
	for _, tc := range []struct {
		path, key string
		code      int
		want      string
	}{
		{"/v1/calls", serveTestKey, 200, "["},
		{"/v1/calls", "wrong", 401, "application/problem+json"},
		{"/v1/openapi.yaml", "", 200, "openapi: 3.1"},
		{"/widget/", "", 200, "<!doctype html>"},
	} {
		req, _ := http.NewRequest("GET", "http://"+l["http"]+tc.path, nil)
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		got := res.Header.Get("Content-Type") + " " + strings.ToLower(string(b))
		if res.StatusCode != tc.code || !strings.Contains(got, strings.ToLower(tc.want)) {
			t.Errorf("GET %s (key %q) = %d %.200s; want %d with %q", tc.path, tc.key, res.StatusCode, got, tc.code, tc.want)
		}
	}

	// The carrier trunk answers OPTIONS.
	c, err := net.Dial("udp", l["carrier"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opt := fmt.Sprintf("OPTIONS sip:ping@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-serve1\r\nFrom: <sip:t@test>;tag=1\r\nTo: <sip:ping@%s>\r\nCall-ID: serve-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", l["carrier"], c.LocalAddr(), l["carrier"])
	if _, err := c.Write([]byte(opt)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "SIP/2.0 200") {
		t.Errorf("OPTIONS answer: %v %q", err, buf[:n])
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "DEVELOPMENT KEY") {
		t.Error("no warning about the development audit key")
	}
	key, err := audit.LoadHMACKey(trail + ".devkey")
	if err != nil {
		t.Fatal(err)
	}
	h, err := audit.NewHMAC(audit.HMACKey{ID: "dev", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(trail)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.Verify(context.Background(), f, h); err != nil {
		t.Errorf("audit trail does not verify: %v", err)
	}
	b, _ := os.ReadFile(trail)
	for _, ev := range []audit.Event{audit.EventServiceStarted, audit.EventConfigLoaded, audit.EventServiceStopped} {
		if !strings.Contains(string(b), `"event":"`+string(ev)+`"`) {
			t.Errorf("audit trail lacks %s; stderr:\n%s", ev, stderr.String())
		}
	}
}

func TestServeUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("sip:\n  trunks:\n    carrier:\n      lissten: x\n"), 0o600)
	badIO := filepath.Join(dir, "bad-io.yaml")
	os.WriteFile(badIO, []byte("media:\n  io: epoll\n"), 0o600)
	badSched := filepath.Join(dir, "bad-sched.yaml")
	os.WriteFile(badSched, []byte("media:\n  ring_scheduling: fifo\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"help", []string{"--help"}, 0, ""},
		{"unknown flag", []string{"--nope"}, 2, "flag provided but not defined"},
		{"extra argument", []string{"x"}, 2, "unexpected argument"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.yaml")}, 2, "no such file"},
		{"unknown key", []string{"--config", bad}, 2, "sip.trunks.carrier.lissten (line 4): unknown key"},
		{"unknown relay engine", []string{"--config", badIO}, 2, "media.io"},
		{"real time without a priority", []string{"--config", badSched}, 2, "media.ring_priority: 0: with ring_scheduling fifo it is a real-time priority, 1 to 99"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o, e bytes.Buffer
			code := serveContext(context.Background(), tt.args, &o, &e)
			if code != tt.wantCode || !strings.Contains(e.String(), tt.wantErr) {
				t.Errorf("code %d stderr %q, want %d and %q", code, e.String(), tt.wantCode, tt.wantErr)
			}
			if tt.name == "help" && !strings.Contains(o.String(), "Usage: tonevault serve") {
				t.Errorf("help = %q", o.String())
			}
		})
	}
}

// TestServeTLS: with a certificate configured, the API listener speaks
// HTTPS only.
func TestServeTLS(t *testing.T) {
	cfgPath, _ := testConfig(t)
	dir := filepath.Dir(cfgPath)
	certPEM, keyPEM, pool := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfgPath)
	cfg := strings.Replace(string(b), "http:\n  listen: 127.0.0.1:0\n",
		fmt.Sprintf("http:\n  listen: 127.0.0.1:0\n  tls_cert_file: %s\n  tls_key_file: %s\n", certFile, keyFile), 1)
	if cfg == string(b) {
		t.Fatal("test config has no http section to extend")
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- serveContext(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()
	l := listeners(t, &stdout, done)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := client.Get("https://" + l["http"] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("https /healthz = %d", res.StatusCode)
	}
	if res, err := http.Get("http://" + l["http"] + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS listener")
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
}

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tonevault-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), pool
}

// TestServeMediaIO: media.io reaches the relay, and on io_uring so do the
// rings' scheduling keys (the log's "media relay ready" says which).
func TestServeMediaIO(t *testing.T) {
	for _, tc := range []struct {
		name, media, want string
	}{
		{"goroutines", "  io: goroutines\n", `"msg":"media relay ready","io":"goroutines"`},
		// A higher nice value needs no privilege.
		{"io_uring niced", "  io: auto\n  ring_priority: 3\n", `"io":"io_uring","port_min":0,"port_max":0,"ring_scheduling":"other","ring_priority":3`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath, _ := testConfig(t)
			b, err := os.ReadFile(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.Replace(b, []byte("  level: warn\n"), []byte("  level: info\n"), 1)
			b = bytes.Replace(b, []byte("media:\n"), []byte("media:\n"+tc.media), 1)
			if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
				t.Fatal(err)
			}
			log := serveOnce(t, cfgPath)
			if tc.name != "goroutines" && strings.Contains(log, `"msg":"media relay ready","io":"goroutines"`) {
				t.Skip("io_uring unavailable here")
			}
			if !strings.Contains(log, tc.want) {
				t.Errorf("the log does not say %s; stderr:\n%s", tc.want, log)
			}
		})
	}
}

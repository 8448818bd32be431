package tokenize

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps every slice it was asked to write (not a copy), to
// look at what the writer left in them afterwards.
type recordingConn struct {
	net.Conn
	mu    sync.Mutex
	wrote [][]byte
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.wrote = append(c.wrote, p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestVaultRequestLeavesNothingInWriteBuffers sends a body through the
// Vault client's transport, as writeCard does, and then looks at the
// buffers net/http handed to the connection: wiped once written. The
// control is the same request over a plain connection.
func TestVaultRequestLeavesNothingInWriteBuffers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"batch_results":[{"ciphertext":"vault:v1:abc"}]}}`)
	}))
	defer srv.Close()
	const card = "4111111111111111"
	b64 := []byte(`"NDExMTExMTExMTExMTExMQ=="`)
	for _, wipe := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Address = srv.URL
		c, err := newClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken("test-token")
		tr := c.CloneConfig().HttpClient.Transport.(*http.Transport)
		var rec *recordingConn
		dial := tr.DialContext // newClient's: wipingConns
		if !wipe {
			// The control: what net/http leaves behind without them.
			dial = (&net.Dialer{}).DialContext
		}
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			rec = &recordingConn{Conn: conn}
			return rec, nil
		}
		body := batchBody("plaintext", "", []byte(card))
		if _, err := c.Logical().WriteBytesWithContext(context.Background(), "tonevault-transit/encrypt/tonevault-card", body); err != nil {
			t.Fatal(err)
		}
		if rec == nil {
			t.Fatal("no connection dialled")
		}
		rec.mu.Lock()
		found := false
		for _, w := range rec.wrote {
			found = found || bytes.Contains(w[:cap(w)], b64)
		}
		rec.mu.Unlock()
		if found == wipe {
			t.Errorf("wipingConn %v: the card data left in a written buffer: %v", wipe, found)
		}
	}
}

// shortConn writes at most n bytes, then fails.
type shortConn struct {
	net.Conn
	n int
}

func (c shortConn) Write(p []byte) (int, error) {
	if len(p) > c.n {
		return c.n, errors.New("short write")
	}
	return len(p), nil
}

// TestWipingConnShortWrite: after a short write, what was not written is
// left for the writer to send again.
func TestWipingConnShortWrite(t *testing.T) {
	p := []byte("0123456789")
	n, err := wipingConn{shortConn{n: 4}}.Write(p)
	if n != 4 || err == nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if string(p[4:]) != "456789" || !bytes.Equal(p[:4], make([]byte, 4)) {
		t.Fatalf("after a 4-byte write: %q", p)
	}
}

// TestVaultOverTLS: with HTTPS, the client does the TLS handshake itself
// (so that the wipingConn sits above TLS), still verifies the server's
// certificate against vault.ca_file, and speaks HTTP/1.1.
func TestVaultOverTLS(t *testing.T) {
	var proto string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto = r.Proto
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"ok":true}}`)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Address = srv.URL
	cfg.CAFile = ca
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-token")
	s, err := c.Logical().ReadWithContext(context.Background(), "sys/whatever")
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Data["ok"].(bool); !ok || proto != "HTTP/1.1" {
		js, _ := json.Marshal(s.Data)
		t.Fatalf("answer %s over %s, want ok over HTTP/1.1", js, proto)
	}

	// Another CA: the handshake fails.
	cfg.CAFile = filepath.Join(t.TempDir(), "other-ca.pem")
	if err := os.WriteFile(cfg.CAFile, selfSignedPEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-token")
	if _, err := c.Logical().ReadWithContext(context.Background(), "sys/whatever"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a server the CA did not sign: %v, want a certificate error", err)
	}
}

// selfSignedPEM is a CA certificate that signed nothing.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestBatchBody: the body is the JSON transit expects, made at its final
// size (a growing append would leave copies of the card data behind).
func TestBatchBody(t *testing.T) {
	tests := []struct {
		field, extra string
		items        []string
		want         string
	}{
		{"plaintext", "", []string{"4111111111111111", "1230"},
			`{"batch_input":[{"plaintext":"NDExMTExMTExMTExMTExMQ=="},{"plaintext":"MTIzMA=="}]}`},
		{"input", `,"key_version":1`, []string{"378282246310005"},
			`{"batch_input":[{"input":"Mzc4MjgyMjQ2MzEwMDA1"}],"key_version":1}`},
		{"input", "", nil, `{"batch_input":[]}`},
	}
	for _, tt := range tests {
		items := make([][]byte, len(tt.items))
		for i, it := range tt.items {
			items[i] = []byte(it)
		}
		b := batchBody(tt.field, tt.extra, items...)
		if string(b) != tt.want || !json.Valid(b) {
			t.Errorf("batchBody = %s, want %s", b, tt.want)
		}
		if len(b) != cap(b) {
			t.Errorf("batchBody made %d bytes for %d", cap(b), len(b))
		}
	}
}

// TestVaultConnectionsReused: after a burst of calls at once, the next
// burst of the same size reuses the connections instead of opening new
// ones (the default pool kept GOMAXPROCS+1 of them).
func TestVaultConnectionsReused(t *testing.T) {
	const burst = 16
	var (
		mu      sync.Mutex
		opened  int
		arrived = make(chan struct{}, burst)
		release = make(chan struct{})
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release // hold every call until all are in flight
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"data":{"ok":true}}`)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			opened++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.Address = srv.URL
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("test-token")
	for round := 1; round <= 2; round++ {
		errs := make(chan error, burst)
		for i := 0; i < burst; i++ {
			go func() {
				_, err := c.Logical().ReadWithContext(context.Background(), "tonevault-kv/data/tonevault/tokens/x")
				errs <- err
			}()
		}
		for i := 0; i < burst; i++ {
			<-arrived
		}
		for i := 0; i < burst; i++ {
			release <- struct{}{}
		}
		for i := 0; i < burst; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		mu.Lock()
		n := opened
		mu.Unlock()
		if n != burst {
			t.Fatalf("after burst %d of %d calls at once: %d connections opened, want %d", round, burst, n, burst)
		}
	}
}

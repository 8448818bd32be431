package psp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it as a CA file.
func selfSigned(t *testing.T) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "psp-sim test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
	return cfg, ca
}

func TestTLS(t *testing.T) {
	srv, ca := selfSigned(t)
	e := newEnv(t, sim.Config{TLS: srv}, func(c *psp.Config) { c.CAFile = ca })
	resp, err := e.authorize(request("4111111111111111", 1000))
	if err != nil || resp.Outcome != psp.Approved {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestTLSUntrustedServer(t *testing.T) {
	srv, _ := selfSigned(t)
	_, otherCA := selfSigned(t)
	s, err := sim.Listen("127.0.0.1:0", sim.Config{TLS: srv})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	log := &syncBuffer{}
	c, err := psp.NewISO(psp.Config{Addrs: []string{s.Addr()}, CAFile: otherCA, Terminal: "T1", Merchant: "M1",
		Logger: rawLogger(log), ConnectTimeout: time.Second}, testStore(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	resp, err := c.Authorize(t.Context(), request("4111111111111111", 1000))
	if err == nil || resp.Reason != psp.ReasonUnavailable {
		t.Fatalf("authorized through an untrusted server: %+v %v", resp, err)
	}
	if s.Stats().Received != 0 {
		t.Errorf("the untrusted server received messages: %+v", s.Stats())
	}
}

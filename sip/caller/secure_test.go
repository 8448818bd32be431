package caller

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// selfSigned is a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "uas"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// TestSecureCall: with SRTP the caller offers RTP/SAVP, protects what it
// sends with its key and authenticates what it gets with the far end's,
// over UDP and over TLS; the far end decrypts the typed digits, and what
// went over the wire was not the plain audio. Over TLS the far end's BYE
// comes back over the caller's own connection.
func TestSecureCall(t *testing.T) {
	cert, pool := selfSigned(t)
	for _, network := range []string{"udp", "tls"} {
		t.Run(network, func(t *testing.T) {
			u := callertest.NewUAS(t, callertest.UASOptions{Network: network, SRTP: true,
				TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
			var out syncBuffer
			c := dial(t, Options{Target: u.Target(), Transport: network, SRTP: true, TLS: &tls.Config{RootCAs: pool},
				Progress: &out, Timing: Timing{Seed: 7}})
			digits := []byte(testKeys)
			if err := c.Type(context.Background(), digits, InBand); err != nil {
				t.Fatalf("Type: %v", err)
			}
			if got := u.InBandDigits(); string(got) != testKeys {
				t.Errorf("the UAS decrypted %d digits, want %d", len(got), len(testKeys))
			}
			if n := u.SRTPFailures(); n != 0 {
				t.Errorf("%d packets did not authenticate at the UAS", n)
			}
			raw, plain := u.RawPackets(), u.Packets()
			if len(raw) == 0 || len(raw) != len(plain) {
				t.Fatalf("%d datagrams, %d packets decrypted", len(raw), len(plain))
			}
			for i, p := range plain {
				if bytes.Contains(raw[i], p.Payload) {
					t.Fatalf("datagram %d carries its audio in the clear", i)
				}
			}
			if got := callertest.Detect(c.Received()); string(got) != testKeys {
				t.Errorf("echoed SRTP audio: %d digits decoded by the caller, want %d", len(got), len(testKeys))
			}
			if n := c.media.srtpFailures(); n != 0 {
				t.Errorf("%d packets did not authenticate at the caller", n)
			}
			u.Bye(t)
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the far end's BYE did not end the call")
			}
			checkNoCard(t, out.String())
			c.Hangup(context.Background())
		})
	}
	t.Run("plain far end", func(t *testing.T) {
		u := callertest.NewUAS(t, callertest.UASOptions{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := Dial(ctx, Options{Target: u.Target(), SRTP: true})
		var se *StatusError
		if !errors.As(err, &se) || se.Code != 488 {
			t.Fatalf("Dial = %v, want 488", err)
		}
	})
}

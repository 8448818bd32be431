package sip

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	dir  string
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ToneVault test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), dir: t.TempDir()}
	ca.write(t, "ca.pem", ca.pem)
	return ca
}

func (ca *testCA) write(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(ca.dir, name)
	// Write beside and rename, as a renewal would: a reader never sees
	// half a file.
	if err := os.WriteFile(p+".new", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".new", p); err != nil {
		t.Fatal(err)
	}
	return p
}

// issue makes a certificate for 127.0.0.1 named cn, for servers and
// clients, and returns it as a tls.Certificate and as PEM files.
func (ca *testCA) issue(t testing.TB, cn string) (tls.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	// The key first: a reader that sees the new certificate finds its key.
	kp := ca.write(t, cn+".key", keyPEM)
	cp := ca.write(t, cn+".pem", certPEM)
	return pair, cp, kp
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// tlsPeer is one SIP over TLS connection of the test.
type tlsPeer struct {
	t    testing.TB
	conn *tls.Conn
	r    *bufio.Reader
}

func dialTLS(t testing.TB, addr netip.AddrPort, cfg *tls.Config) (*tlsPeer, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr.String(), cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return &tlsPeer{t: t, conn: c, r: bufio.NewReader(c)}, nil
}

func (p *tlsPeer) send(msg string) {
	p.t.Helper()
	msg = strings.ReplaceAll(strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\r\n", "\n"), "\n", "\r\n")
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// readStream reads one SIP message from a stream transport.
func readStream(t testing.TB, c net.Conn, r *bufio.Reader) sip.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var head strings.Builder
	n := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if line == "\r\n" && head.Len() == 0 {
			continue // keep-alive
		}
		head.WriteString(line)
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatal(err)
	}
	m, err := sip.ParseMessage(append([]byte(head.String()), body...))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return m
}

func (p *tlsPeer) response(want int) *sip.Response {
	p.t.Helper()
	for {
		m := readStream(p.t, p.conn, p.r)
		r, ok := m.(*sip.Response)
		if ok && r.StatusCode == 100 {
			continue
		}
		if !ok || r.StatusCode != want {
			p.t.Fatalf("got %s, want %d", m.String(), want)
		}
		return r
	}
}

// tlsConfigFor is a trunk TLS configuration with a fresh certificate.
func tlsConfigFor(t testing.TB, ca *testCA, cn string) TLSConfig {
	_, cp, kp := ca.issue(t, cn)
	return TLSConfig{CertFile: cp, KeyFile: kp, CAFile: filepath.Join(ca.dir, "ca.pem"), MinVersion: "1.2"}
}

func tlsInvite(p *tlsPeer, scheme string, to netip.AddrPort, callID string) string {
	local := p.conn.LocalAddr().String()
	return fmt.Sprintf(`INVITE %s:4420700000@%s SIP/2.0
Via: SIP/2.0/TLS %s;branch=z9hG4bK-%s
From: "Jane" <%s:441234567890@example.com>;tag=cust1
To: <%s:4420700000@%s>
Call-ID: %s
CSeq: 1 INVITE
Contact: <sip:customer@%s;transport=tls>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: %d

`, scheme, to, local, callID, scheme, scheme, to, callID, local, len(sdpCRLF(customerSDP))) + sdpCRLF(customerSDP)
}

// TestTLSCall: a customer calls over TLS 1.2 and over TLS 1.3, with a
// sip: and a sips: Request-URI; the gateway answers over the same
// connection, its Contact naming its TLS port with transport=tls (sips:
// for a sips: dialog). TLS 1.1 is refused.
func TestTLSCall(t *testing.T) {
	ca := newTestCA(t)
	tests := []struct {
		name    string
		version uint16
		scheme  string
	}{
		{"TLS 1.2, sip:", tls.VersionTLS12, "sip"},
		{"TLS 1.3, sip:", tls.VersionTLS13, "sip"},
		{"TLS 1.3, sips:", tls.VersionTLS13, "sips"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent := newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				c.Trunks.Carrier.Transports = []string{"tls"}
				c.Trunks.Carrier.TLS = tlsConfigFor(t, ca, "gateway")
			})
			addr := tg.g.AddrTLS("carrier")
			cust, err := dialTLS(t, addr, &tls.Config{RootCAs: ca.pool(), MinVersion: tt.version, MaxVersion: tt.version})
			if err != nil {
				t.Fatal(err)
			}
			if v := cust.conn.ConnectionState().Version; v != tt.version {
				t.Fatalf("TLS version %x, want %x", v, tt.version)
			}
			callID := fmt.Sprintf("tls-%d", i)
			cust.send(tlsInvite(cust, tt.scheme, addr, callID))
			inv := agent.readRequest(sip.INVITE)
			agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
			agent.readRequest(sip.ACK)
			ok := cust.response(200)
			contact := ok.Contact().Address
			wantScheme, wantParam := "sip", "tls"
			if tt.scheme == "sips" {
				wantScheme, wantParam = "sips", ""
			}
			tp, _ := contact.UriParams.Get("transport")
			if contact.Scheme != wantScheme || contact.Port != int(addr.Port()) || tp != wantParam {
				t.Errorf("Contact %s: want scheme %s, port %d, transport=%q", contact.String(), wantScheme, addr.Port(), wantParam)
			}
			// ACK and BYE over the same connection end the call.
			local := cust.conn.LocalAddr().String()
			dlg := fmt.Sprintf("From: \"Jane\" <%s:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\n", tt.scheme, ok.To().Value(), callID)
			cust.send(fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-ack-%s\n%sCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", contact.String(), local, callID, dlg))
			cust.send(fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-bye-%s\n%sCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", contact.String(), local, callID, dlg))
			cust.response(200)
			bye := agent.readRequest(sip.BYE)
			agent.respond(tg.plat, bye, 200, "OK", "", "")
			if c := waitEnded(t, tg); c.Outcome != "completed" {
				t.Errorf("outcome %q", c.Outcome)
			}
		})
	}
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		tg := startTestGWWith(t, "127.0.0.0/8", "127.0.0.1:9", func(c *Config) {
			c.Trunks.Carrier.Transports = []string{"udp", "tls"}
			c.Trunks.Carrier.TLS = tlsConfigFor(t, ca, "gateway")
		})
		if _, err := dialTLS(t, tg.g.AddrTLS("carrier"), &tls.Config{RootCAs: ca.pool(), MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("a TLS 1.1 handshake succeeded")
		}
	})
}

// TestTLSMutual: with client_ca_file, a peer without a certificate, or
// with one of another CA, does not get through the handshake; one with
// a certificate of the CA does.
func TestTLSMutual(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	tg := startTestGWWith(t, "127.0.0.0/8", "127.0.0.1:9", func(c *Config) {
		c.Trunks.Carrier.Transports = []string{"tls"}
		c.Trunks.Carrier.TLS = tlsConfigFor(t, ca, "gateway")
		c.Trunks.Carrier.TLS.ClientCAFile = filepath.Join(ca.dir, "ca.pem")
	})
	addr := tg.g.AddrTLS("carrier")
	good, _, _ := ca.issue(t, "carrier-sbc")
	bad, _, _ := other.issue(t, "intruder")
	for _, tc := range []struct {
		name  string
		certs []tls.Certificate
		ok    bool
	}{{"no certificate", nil, false}, {"another CA's", []tls.Certificate{bad}, false}, {"the CA's", []tls.Certificate{good}, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := dialTLS(t, addr, &tls.Config{RootCAs: ca.pool(), Certificates: tc.certs, MaxVersion: tls.VersionTLS12})
			if err == nil {
				// The server's verdict on a client certificate arrives
				// with the first read.
				p.send("OPTIONS sip:tonevault@" + addr.String() + " SIP/2.0\nVia: SIP/2.0/TLS " + p.conn.LocalAddr().String() + ";branch=z9hG4bK-o" + strconv.Itoa(len(tc.name)) + "\nFrom: <sip:x@example.com>;tag=1\nTo: <sip:tonevault@example.com>\nCall-ID: opt-" + tc.name + "\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n")
				p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = p.r.ReadByte()
			}
			if (err == nil) != tc.ok {
				t.Fatalf("handshake and OPTIONS: %v, want success %v", err, tc.ok)
			}
		})
	}
}

// TestTLSReload: a renewed certificate written over the files is served
// from the next handshake on, without a restart; a broken one is not,
// and the last good one stays.
func TestTLSReload(t *testing.T) {
	ca := newTestCA(t)
	cfg := tlsConfigFor(t, ca, "gateway")
	tg := startTestGWWith(t, "127.0.0.0/8", "127.0.0.1:9", func(c *Config) {
		c.Trunks.Carrier.Transports = []string{"tls"}
		c.Trunks.Carrier.TLS = cfg
	})
	addr := tg.g.AddrTLS("carrier")
	serial := func() *big.Int {
		t.Helper()
		p, err := dialTLS(t, addr, &tls.Config{RootCAs: ca.pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer p.conn.Close()
		return p.conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first := serial()
	// Renewal: a new certificate and key under the same names. The
	// modification time may not move within the file system's clock
	// step, so move it on explicitly.
	ca.issue(t, "gateway")
	later := time.Now().Add(2 * time.Second)
	os.Chtimes(cfg.CertFile, later, later)
	os.Chtimes(cfg.KeyFile, later, later)
	second := serial()
	if second.Cmp(first) == 0 {
		t.Fatal("the renewed certificate is not served")
	}
	ca.write(t, "gateway.pem", []byte("not a certificate"))
	later = later.Add(2 * time.Second)
	os.Chtimes(cfg.CertFile, later, later)
	if got := serial(); got.Cmp(second) != 0 {
		t.Fatal("a broken certificate file replaced the good one")
	}
}

// TestTLSToPlatform: a call leaves through a trunk whose target is a
// sips: URI over TLS: the gateway verifies the platform's certificate
// against ca_file, shows its own when asked (mutual TLS), its Via says
// TLS with its TLS port, its Contact is sips:.
func TestTLSToPlatform(t *testing.T) {
	ca := newTestCA(t)
	srvCert, _, _ := ca.issue(t, "platform")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.pool()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cust := newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", "127.0.0.1:9", func(c *Config) {
		c.Trunks.Platform.Transports = []string{"udp", "tls"}
		c.Trunks.Platform.TLS = tlsConfigFor(t, ca, "gateway")
		c.Trunks.Platform.Target = "sips:agent@" + ln.Addr().String()
	})
	accepted := make(chan *tls.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c.(*tls.Conn)
		}
	}()
	cust.send(tg.carrier, invite(cust, tg.carrier, "tls-out", "", customerSDP))
	var conn *tls.Conn
	select {
	case conn = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not connect to the platform")
	}
	defer conn.Close()
	m := readStream(t, conn, bufio.NewReader(conn))
	inv, ok := m.(*sip.Request)
	if !ok || inv.Method != sip.INVITE {
		t.Fatalf("got %s", m.String())
	}
	if st := conn.ConnectionState(); len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "gateway" {
		t.Error("the gateway showed no client certificate")
	}
	via := inv.Via()
	if via.Transport != "TLS" || via.Port != int(tg.g.AddrTLS("platform").Port()) {
		t.Errorf("Via %s: want TLS and port %d", via.Value(), tg.g.AddrTLS("platform").Port())
	}
	if c := inv.Contact().Address; c.Scheme != "sips" || c.Port != int(tg.g.AddrTLS("platform").Port()) {
		t.Errorf("Contact %s: want sips: on the TLS port", c.String())
	}
	if inv.Recipient.Scheme != "sips" {
		t.Errorf("Request-URI %s", inv.Recipient.String())
	}
	// The platform is busy: its answer goes back over the connection.
	if _, err := conn.Write([]byte(sip.NewResponseFromRequest(inv, 486, "Busy Here", nil).String())); err != nil {
		t.Fatal(err)
	}
	cust.readResponse(486)
}

// TestTLSConfigValidate: TLS without a certificate, a bad version, a
// sips: target without tls, and missing files are refused, naming the
// key.
func TestTLSConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mut  func(*TrunkConfig)
		want string
	}{
		{"no certificate", func(tc *TrunkConfig) { tc.Transports = []string{"tls"} }, "sip.trunks.carrier.tls.cert_file"},
		{"bad version", func(tc *TrunkConfig) {
			tc.Transports = []string{"tls"}
			tc.TLS = TLSConfig{CertFile: "c", KeyFile: "k", MinVersion: "1.1"}
		}, "sip.trunks.carrier.tls.min_version"},
		{"sips target without tls", func(tc *TrunkConfig) { tc.Target = "sips:x@127.0.0.1" }, "add tls"},
		{"bad transport", func(tc *TrunkConfig) { tc.Transports = []string{"sctp"} }, "want udp, tcp or tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mut(&c.Trunks.Carrier)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	c := DefaultConfig()
	c.Trunks.Carrier.Listen = netip.MustParseAddrPort("127.0.0.1:0")
	c.Trunks.Carrier.Transports = []string{"tls"}
	c.Trunks.Carrier.TLS = TLSConfig{CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"}
	if _, err := newTrunk("carrier", 0, c.Trunks.Carrier, "x", slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "sip.trunks.carrier.tls.cert_file") {
		t.Fatalf("newTrunk = %v", err)
	}
}

// BenchmarkTLSCall is the SIP over TLS call rate of the gateway: one op
// is a whole call from a customer over TLS (INVITE, 200, ACK, BYE, 200)
// to an agent over UDP, with the relay faked. "handshake" opens a new
// TLS connection (ECDSA P-256, TLS 1.3) per call, as an SBC that does
// not keep connections would; "reused" sends every call over one
// connection, as carriers do.
func BenchmarkTLSCall(b *testing.B) {
	for _, reuse := range []bool{false, true} {
		name := "handshake"
		if reuse {
			name = "reused"
		}
		b.Run(name, func(b *testing.B) {
			ca := newTestCA(b)
			agent := newPeer(b)
			tg := startTestGWWith(b, "127.0.0.0/8", agent.addr(), func(c *Config) {
				c.Trunks.Carrier.Transports = []string{"tls"}
				c.Trunks.Carrier.TLS = tlsConfigFor(b, ca, "gateway")
			})
			addr := tg.g.AddrTLS("carrier")
			cfg := &tls.Config{RootCAs: ca.pool()}
			var cust *tlsPeer
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if cust == nil || !reuse {
					if cust != nil {
						cust.conn.Close()
					}
					var err error
					if cust, err = dialTLS(b, addr, cfg); err != nil {
						b.Fatal(err)
					}
				}
				tlsCallOnce(b, tg, cust, agent, addr, fmt.Sprintf("bench-%s-%d", name, i))
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
		})
	}
}

// tlsCallOnce runs one whole call from cust over TLS to agent and back.
func tlsCallOnce(t testing.TB, tg *testGW, cust *tlsPeer, agent *peer, addr netip.AddrPort, callID string) {
	t.Helper()
	cust.send(tlsInvite(cust, "sip", addr, callID))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
	agent.readRequest(sip.ACK)
	ok := cust.response(200)
	contact := ok.Contact().Address
	local := cust.conn.LocalAddr().String()
	dlg := fmt.Sprintf("From: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\n", ok.To().Value(), callID)
	cust.send(fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-ack-%s\n%sCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", contact.String(), local, callID, dlg))
	cust.send(fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/TLS %s;branch=z9hG4bK-bye-%s\n%sCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", contact.String(), local, callID, dlg))
	cust.response(200)
	bye := agent.readRequest(sip.BYE)
	agent.respond(tg.plat, bye, 200, "OK", "", "")
}

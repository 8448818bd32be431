package sipe2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/internal/testutil"
)

// capture is tshark writing what crosses loopback, through a capture
// filter on the test's own ports, to a pcap file.
type capture struct {
	cmd  *exec.Cmd
	path string
	out  testutil.SyncBuffer
	done chan error
}

// startCapture starts tshark on lo with filter and waits until it
// captures: "Capturing on" comes a moment before packets do, so one-byte
// datagrams go to probe, a loopback UDP port the filter takes, until the
// file holds one (the parsers pass over such a datagram).
func startCapture(t *testing.T, filter string, probe int) *capture {
	t.Helper()
	bin, err := exec.LookPath("tshark")
	if err != nil {
		msg := "tshark not found (Debian package tshark: scripts/install-deps.sh sip)"
		if os.Getenv(envRequireTools) == "1" {
			t.Fatalf("%s; required because %s=1", msg, envRequireTools)
		}
		t.Skipf("skipping: %s", msg)
	}
	c := &capture{path: filepath.Join(t.TempDir(), "capture.pcap"), done: make(chan error, 1)}
	c.cmd = exec.Command(bin, "-i", "lo", "-f", filter, "-F", "pcap", "-w", c.path)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(c.out.String(), "Capturing on") {
		select {
		case err := <-c.done:
			t.Fatalf("tshark ended (%v) before capturing:\n%s", err, c.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark did not start capturing:\n%s", c.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(probe))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for {
		_, _ = conn.Write([]byte{0})
		if fi, err := os.Stat(c.path); err == nil && fi.Size() > 24 { // more than the pcap header
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("tshark captures nothing:\n%s", c.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends the capture and returns its packets.
func (c *capture) stop(t *testing.T) []pkt {
	t.Helper()
	// Let the last packets reach the capture before it ends.
	time.Sleep(300 * time.Millisecond)
	c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.done
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		t.Fatalf("capture: %v\n%s", err, c.out.String())
	}
	pkts, err := readPcap(b)
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	return pkts
}

// pkt is one captured UDP datagram or TCP segment's payload.
type pkt struct {
	udp      bool
	src, dst netip.AddrPort
	payload  []byte
}

// readPcap reads the IPv4 UDP and TCP packets of a classic pcap file.
func readPcap(b []byte) ([]pkt, error) {
	if len(b) < 24 {
		return nil, errors.New("pcap: short file")
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, errors.New("pcap: not a pcap file")
	}
	link := bo.Uint32(b[20:])
	hdr := map[uint32]int{1: 14, 113: 16, 276: 20, 0: 4}[link]
	if hdr == 0 && link != 0 {
		return nil, errors.New("pcap: unknown link type")
	}
	var out []pkt
	for off := 24; off+16 <= len(b); {
		n := int(bo.Uint32(b[off+8:]))
		off += 16
		if off+n > len(b) {
			break
		}
		frame := b[off : off+n]
		off += n
		if len(frame) < hdr+20 {
			continue
		}
		ip := frame[hdr:]
		if ip[0]>>4 != 4 {
			continue
		}
		ihl := int(ip[0]&0xf) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if total > len(ip) || ihl+8 > total {
			continue
		}
		srcIP, dstIP := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		l4 := ip[ihl:total]
		sp, dp := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		p := pkt{src: netip.AddrPortFrom(srcIP, sp), dst: netip.AddrPortFrom(dstIP, dp)}
		switch ip[9] {
		case 17:
			p.udp, p.payload = true, bytes.Clone(l4[8:])
		case 6:
			if len(l4) < 20 || int(l4[12]>>4)*4 > len(l4) {
				continue
			}
			p.payload = bytes.Clone(l4[int(l4[12]>>4)*4:])
		default:
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// testCA issues the certificates of a test's TLS peers.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	dir  string
	file string // the CA certificate, PEM
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sipe2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &testCA{cert: cert, key: key, dir: t.TempDir()}
	ca.file = filepath.Join(ca.dir, "ca.pem")
	if err := os.WriteFile(ca.file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// issue writes a certificate for 127.0.0.1 and its key, and both in one
// file (baresip's sip_certificate), and returns the three paths.
func (ca *testCA) issue(t *testing.T, cn string) (certFile, keyFile, both string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	certFile, keyFile, both = filepath.Join(ca.dir, cn+".pem"), filepath.Join(ca.dir, cn+".key"), filepath.Join(ca.dir, cn+"-both.pem")
	for p, b := range map[string][]byte{certFile: c, keyFile: k, both: append(append([]byte{}, c...), k...)} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile, both
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Package callertest is a minimal SIP answering side for tests of the
// caller and of anything that dials: written on sipgo's server with its own
// SDP text and parsing, so that it shares no code with package caller. It
// answers (or refuses) calls, echoes the audio it gets, and keeps every RTP
// packet and INFO body for the test to check.
package callertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/tonevault/tonevault/dtmf"
)

// UASOptions configure a UAS.
type UASOptions struct {
	// Network is "udp" (default) or "tcp".
	Network string
	// Code is the final answer to the INVITE (default 200); anything else
	// refuses the call after 180 Ringing.
	Code int
	// NoEvents answers without telephone-event.
	NoEvents bool
	// SRTP answers SDES-SRTP offers (RTP/SAVP with a=crypto) with a key
	// of its own, and keeps what it receives decrypted: Packets is then
	// what the packets carried once authenticated and decrypted, with
	// the key the caller offered. Without it an SRTP offer gets 488.
	SRTP bool
	// TLS, for Network "tls", is the listener's certificate.
	TLS *tls.Config
}

// UAS answers one call on 127.0.0.1 ephemeral ports.
type UAS struct {
	t        testing.TB
	network  string
	sipAddr  netip.AddrPort
	code     int  // final answer to the INVITE
	noEvents bool // answer without telephone-event
	srtpOn   bool
	dialogs  *sipgo.DialogServerCache
	rtpConn  *net.UDPConn

	mu       sync.Mutex
	pkts     []rtp.Packet
	infos    [][]byte
	raw      [][]byte // the datagrams as received, before any decryption
	srtp     *srtpState
	authFail int
	byes     int
	dlg      *sipgo.DialogServerSession
	invite   *sip.Request // the first INVITE received
	answered chan struct{}
	byeCh    chan struct{}
}

// NewUAS starts a UAS; it stops at the end of the test.
func NewUAS(t testing.TB, o UASOptions) *UAS {
	t.Helper()
	network, code := o.Network, o.Code
	if network == "" {
		network = "udp"
	}
	if code == 0 {
		code = 200
	}
	u := &UAS{t: t, network: network, code: code, noEvents: o.NoEvents, srtpOn: o.SRTP,
		answered: make(chan struct{}), byeCh: make(chan struct{})}
	log := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-uas"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	copts := []sipgo.ClientOption{sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1")}
	var serve func() // started once every handler is in place
	switch network {
	case "udp":
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		u.sipAddr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		copts = append(copts, sipgo.WithClientConnectionAddr(u.sipAddr.String()))
		serve = func() { go srv.ServeUDP(pc) }
		t.Cleanup(func() { pc.Close() })
	case "tcp":
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		u.sipAddr = ln.Addr().(*net.TCPAddr).AddrPort()
		serve = func() { go srv.ServeTCP(ln) }
		t.Cleanup(func() { ln.Close() })
	case "tls":
		ln, err := tls.Listen("tcp", "127.0.0.1:0", o.TLS)
		if err != nil {
			t.Fatal(err)
		}
		u.sipAddr = ln.Addr().(*net.TCPAddr).AddrPort()
		serve = func() { go srv.ServeTLS(ln) }
		t.Cleanup(func() { ln.Close() })
	}
	copts = append(copts, sipgo.WithClientPort(int(u.sipAddr.Port())))
	cli, err := sipgo.NewClient(ua, copts...)
	if err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "uas", Host: "127.0.0.1", Port: int(u.sipAddr.Port())}}
	if network != "udp" {
		contact.Address.UriParams = sip.HeaderParams{}
		contact.Address.UriParams.Add("transport", network)
	}
	u.dialogs = sipgo.NewDialogServerCache(cli, contact)
	u.rtpConn, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.rtpConn.Close(); ua.Close() })
	go u.readRTP()

	srv.OnInvite(u.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = u.dialogs.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := u.dialogs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Such Call", nil))
			return
		}
		u.mu.Lock()
		u.byes++
		if u.byes == 1 {
			close(u.byeCh)
		}
		u.mu.Unlock()
	})
	srv.OnInfo(func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		if ct := req.ContentType(); ct != nil && ct.Value() == "application/dtmf-relay" {
			u.infos = append(u.infos, bytes.Clone(req.Body()))
		}
		u.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	serve()
	return u
}

// Target is the URI to dial.
func (u *UAS) Target() string {
	if u.network == "tls" {
		return fmt.Sprintf("sip:pay@%s;transport=tls", u.sipAddr)
	}
	return fmt.Sprintf("sip:pay@%s", u.sipAddr)
}

var (
	mAudio = regexp.MustCompile(`(?m)^m=audio (\d+) RTP/(S?)AVP ([0-9 ]+)\r?$`)
	cLine  = regexp.MustCompile(`(?m)^c=IN IP4 ([0-9.]+)\r?$`)
)

func (u *UAS) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	dlg, err := u.dialogs.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	defer dlg.Close()
	u.mu.Lock()
	if u.invite == nil {
		u.invite = req.Clone()
	}
	u.mu.Unlock()
	_ = dlg.Respond(180, "Ringing", nil)
	if u.code != 200 {
		_ = dlg.Respond(u.code, "Busy Here", nil)
		return
	}
	offer := string(req.Body())
	m, c := mAudio.FindStringSubmatch(offer), cLine.FindStringSubmatch(offer)
	if m == nil || c == nil || !slices.Contains(strings.Fields(m[3]), "0") || (m[2] == "S") != u.srtpOn {
		_ = dlg.Respond(488, "Not Acceptable Here", nil)
		return
	}
	if u.srtpOn {
		st, err := answerSRTP(offer)
		if err != nil {
			_ = dlg.Respond(488, "Not Acceptable Here", nil)
			return
		}
		u.mu.Lock()
		u.srtp = st
		u.mu.Unlock()
	}
	_ = dlg.RespondSDP(u.sdp("sendrecv"))
	u.mu.Lock()
	u.dlg = dlg
	u.mu.Unlock()
	close(u.answered)
	<-dlg.Context().Done()
}

// sdp is the UAS's description: PCMU, and telephone-event 101 unless
// noEvents.
func (u *UAS) sdp(dir string) []byte {
	port := u.rtpConn.LocalAddr().(*net.UDPAddr).Port
	fmts, ev := "0 101", "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
	if u.noEvents {
		fmts, ev = "0", ""
	}
	proto, crypto := "AVP", ""
	u.mu.Lock()
	if u.srtp != nil {
		proto, crypto = "SAVP", u.srtp.answer
	}
	u.mu.Unlock()
	return []byte(fmt.Sprintf("v=0\r\no=uas 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/%s %s\r\na=rtpmap:0 PCMU/8000\r\n%sa=%s\r\n%s", port, proto, fmts, ev, dir, crypto))
}

// readRTP keeps every packet and echoes audio back to its sender, so the
// caller's receive path has something to record.
func (u *UAS) readRTP() {
	buf := make([]byte, 2048)
	for {
		n, from, err := u.rtpConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		u.mu.Lock()
		u.raw = append(u.raw, bytes.Clone(buf[:n]))
		st := u.srtp
		pkt := buf[:n]
		if st != nil {
			var err error
			if pkt, err = st.dec.DecryptRTP(nil, pkt, nil); err != nil {
				u.authFail++
				u.mu.Unlock()
				continue
			}
		}
		var p rtp.Packet
		if p.Unmarshal(pkt) != nil {
			u.mu.Unlock()
			continue
		}
		u.pkts = append(u.pkts, *p.Clone())
		echo := pkt
		if st != nil && p.PayloadType == 0 {
			echo, _ = st.enc.EncryptRTP(nil, pkt, nil)
		}
		u.mu.Unlock()
		if p.PayloadType == 0 && echo != nil {
			_, _ = u.rtpConn.WriteToUDPAddrPort(echo, from)
		}
	}
}

// Packets returns every RTP packet received so far, in arrival order.
func (u *UAS) Packets() []rtp.Packet {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.pkts)
}

// InBandDigits decodes the audio received, in sequence order, and runs
// the detector over it.
func (u *UAS) InBandDigits() []byte {
	pkts := u.Packets()
	slices.SortStableFunc(pkts, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
	var pcm []int16
	for _, p := range pkts {
		if p.PayloadType != 0 {
			continue
		}
		buf := make([]int16, len(p.Payload))
		dtmf.DecodeG711(buf, p.Payload, dtmf.PCMU)
		pcm = append(pcm, buf...)
	}
	return Detect(pcm)
}

// Detect runs a fresh in-band detector over 8 kHz audio.
func Detect(pcm []int16) []byte {
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	evs := d.Flush(d.Process(pcm, nil))
	out := make([]byte, 0, len(evs))
	for _, e := range evs {
		out = append(out, byte(e.Digit))
	}
	return out
}

// EventDigits runs the telephone-event packets (payload type 101)
// through the assembler, in arrival order.
func (u *UAS) EventDigits(t testing.TB) []byte {
	var a dtmf.EventAssembler
	var evs []dtmf.Event
	for _, p := range u.Packets() {
		if p.PayloadType != 101 {
			continue
		}
		var err error
		if evs, err = a.Push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload, evs); err != nil {
			t.Errorf("telephone-event packet: %v", err)
		}
	}
	evs = a.Flush(evs)
	out := make([]byte, 0, len(evs))
	for _, e := range evs {
		out = append(out, byte(e.Digit))
	}
	return out
}

var infoRE = regexp.MustCompile(`^Signal=([0-9*#A-D])\r\nDuration=(\d+)\r\n$`)

// InfoDigits reads the INFO bodies; each must be well formed with a
// Duration in lo-hi ms.
func (u *UAS) InfoDigits(t testing.TB, lo, hi int) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []byte
	for _, b := range u.infos {
		m := infoRE.FindSubmatch(b)
		if m == nil {
			t.Errorf("INFO body not Signal/Duration (%d bytes)", len(b))
			continue
		}
		if d, _ := strconv.Atoi(string(m[2])); d < lo || d > hi {
			t.Errorf("INFO Duration=%d, want %d-%d", d, lo, hi)
		}
		out = append(out, m[1]...)
	}
	return out
}

// Dialog waits for the call to be answered.
func (u *UAS) Dialog(t testing.TB) *sipgo.DialogServerSession {
	t.Helper()
	select {
	case <-u.answered:
	case <-time.After(10 * time.Second):
		t.Fatal("UAS: no call answered")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dlg
}

// Reinvite sends an in-dialog INVITE offering direction dir, ACKs the
// 200 and returns its body.
func (u *UAS) Reinvite(t testing.TB, dir string) []byte {
	t.Helper()
	dlg := u.Dialog(t)
	req := sip.NewRequest(sip.INVITE, dlg.InviteRequest.Contact().Address)
	req.SetTransport(dlg.InviteRequest.Transport())
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(u.sdp(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := dlg.Do(ctx, req)
	if err != nil {
		t.Fatalf("re-INVITE: %v", err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE answered %d", res.StatusCode)
	}
	ack := sip.NewRequest(sip.ACK, dlg.InviteRequest.Contact().Address)
	ack.SetTransport(dlg.InviteRequest.Transport())
	if err := dlg.WriteRequest(ack); err != nil {
		t.Fatalf("ACK: %v", err)
	}
	return res.Body()
}

// InviteHeader returns the values of every header called name (case
// insensitive) in the first INVITE received, in order.
func (u *UAS) InviteHeader(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.invite == nil {
		return nil
	}
	var out []string
	for _, h := range u.invite.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

// Byes counts the BYEs received for the call.
func (u *UAS) Byes() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byes
}

// ByeReceived is closed at the first BYE.
func (u *UAS) ByeReceived() <-chan struct{} { return u.byeCh }

// Bye hangs up from the UAS side.
func (u *UAS) Bye(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := u.Dialog(t).Bye(ctx); err != nil {
		t.Fatalf("UAS BYE: %v", err)
	}
}

// RawPackets returns every datagram received on the RTP socket, as it
// arrived (encrypted on an SRTP call).
func (u *UAS) RawPackets() [][]byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.raw)
}

// SRTPFailures counts the datagrams that did not authenticate with the
// caller's key.
func (u *UAS) SRTPFailures() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.authFail
}

// SRTPKey returns the caller's key the UAS decrypts with (base64
// key||salt as offered) and its suite; "" on a plain call.
func (u *UAS) SRTPKey() (suite, key string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.srtp == nil {
		return "", ""
	}
	return u.srtp.suite, u.srtp.theirKey
}

// srtpState is the UAS's SRTP: the caller's key (theirs) and its own.
type srtpState struct {
	suite, theirKey string
	answer          string // our a=crypto line
	dec, enc        *srtp.Context
}

// cryptoRE reads an a=crypto line of the suites the UAS speaks, its key
// with optional lifetime and MKI (which it does not use).
var cryptoRE = regexp.MustCompile(`(?m)^a=crypto:(\d+) (AES_CM_128_HMAC_SHA1_80|AES_CM_128_HMAC_SHA1_32|AEAD_AES_128_GCM) inline:([A-Za-z0-9+/=]+)(\|[^\r\n ]*)?\r?$`)

// answerSRTP takes the first a=crypto of the offer it can do and draws
// its own key. It parses the attribute itself, sharing no code with the
// gateway's parser.
func answerSRTP(offer string) (*srtpState, error) {
	m := cryptoRE.FindStringSubmatch(offer)
	if m == nil {
		return nil, fmt.Errorf("no a=crypto the UAS speaks")
	}
	if strings.Contains(m[4], ":") {
		return nil, fmt.Errorf("keys with an MKI are not for this UAS")
	}
	prof := map[string]srtp.ProtectionProfile{
		"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
		"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
		"AEAD_AES_128_GCM":        srtp.ProtectionProfileAeadAes128Gcm,
	}[m[2]]
	theirs, err := base64.StdEncoding.DecodeString(m[3])
	if err != nil {
		return nil, err
	}
	n := 30
	if m[2] == "AEAD_AES_128_GCM" {
		n = 28
	}
	if len(theirs) != n {
		return nil, fmt.Errorf("key of %d bytes", len(theirs))
	}
	ours := make([]byte, n)
	if _, err := rand.Read(ours); err != nil {
		return nil, err
	}
	dec, err := srtp.CreateContext(theirs[:16], theirs[16:], prof)
	if err != nil {
		return nil, err
	}
	enc, err := srtp.CreateContext(ours[:16], ours[16:], prof)
	if err != nil {
		return nil, err
	}
	return &srtpState{suite: m[2], theirKey: m[3], dec: dec, enc: enc,
		answer: fmt.Sprintf("a=crypto:%s %s inline:%s\r\n", m[1], m[2], base64.StdEncoding.EncodeToString(ours))}, nil
}

// RTPAddr is where the UAS receives RTP.
func (u *UAS) RTPAddr() netip.AddrPort { return u.rtpConn.LocalAddr().(*net.UDPAddr).AddrPort() }

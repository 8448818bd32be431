package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
)

// fakeRelay hands out sessions with fixed local addresses and records
// what the gateway tells them.
type fakeRelay struct {
	mu        sync.Mutex
	sessions  []*fakeSession
	recordErr error // every session's Record fails with it, when set
}

func (r *fakeRelay) Open(callID string) (MediaSession, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.sessions)
	s := &fakeSession{callID: callID, done: make(chan struct{}), recordErr: r.recordErr}
	s.local[media.Carrier] = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(30000+4*n))
	s.local[media.Platform] = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(30002+4*n))
	r.sessions = append(r.sessions, s)
	return s, nil
}

func (r *fakeRelay) session(i int) *fakeSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i >= len(r.sessions) {
		return nil
	}
	return r.sessions[i]
}

type fakeSession struct {
	callID string
	local  [2]netip.AddrPort
	done   chan struct{}
	err    error

	mu        sync.Mutex
	remote    [2][]media.Stream
	digits    []dtmf.Digit
	capture   bool
	closed    bool
	recordErr error          // what Record returns, when set
	rec       *fakeRecording // the fork Record opened
}

func (s *fakeSession) Local(l media.Leg) netip.AddrPort { return s.local[l] }
func (s *fakeSession) SetRemote(l media.Leg, st media.Stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remote[l] = append(s.remote[l], st)
	return nil
}
func (s *fakeSession) InfoDigit(d dtmf.Digit, _ time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.digits = append(s.digits, d)
}
func (s *fakeSession) SetCapture(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.capture = on
}
func (s *fakeSession) Record() (MediaRecording, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recordErr != nil {
		return nil, s.recordErr
	}
	p := s.local[media.Carrier].Port() + 100
	s.rec = &fakeRecording{cust: netip.AddrPortFrom(s.local[0].Addr(), p), agent: netip.AddrPortFrom(s.local[0].Addr(), p+2)}
	return s.rec, nil
}

// recording is the fork Record opened, nil before.
func (s *fakeSession) recording() *fakeRecording {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec
}

// fakeRecording is a recording fork that records what it is told.
type fakeRecording struct {
	cust, agent netip.AddrPort

	mu      sync.Mutex
	remotes [][2]media.Stream
	closed  bool
}

func (r *fakeRecording) Local() (customer, agent netip.AddrPort) { return r.cust, r.agent }
func (r *fakeRecording) SetRemote(customer, agent media.Stream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remotes = append(r.remotes, [2]media.Stream{customer, agent})
	return nil
}
func (r *fakeRecording) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
}
func (r *fakeRecording) state() (remotes [][2]media.Stream, closed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][2]media.Stream(nil), r.remotes...), r.closed
}

func (s *fakeSession) Done() <-chan struct{} { return s.done }
func (s *fakeSession) Err() error            { return s.err }
func (s *fakeSession) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}
func (s *fakeSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// memAudit keeps the records, and writes each to a real audit.Writer
// first, so that a record the Writer would refuse fails the test.
type memAudit struct {
	w       *audit.Writer
	mu      sync.Mutex
	recs    []audit.Record
	refused []error
}

func newMemAudit(t testing.TB) *memAudit {
	t.Helper()
	h, err := audit.NewHMAC(audit.HMACKey{ID: "test", Key: []byte("sip-test-key-0123456789abcdef0123")})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.Open(context.Background(), filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{Signer: h, Sync: audit.SyncOnCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	m := &memAudit{w: w}
	t.Cleanup(func() {
		w.Close(context.Background())
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, err := range m.refused {
			t.Errorf("audit record refused: %v", err)
		}
	})
	return m
}

func (m *memAudit) Append(ctx context.Context, r audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.w.Append(ctx, r); err != nil {
		if !errors.Is(err, audit.ErrClosed) { // not a call that outlived its test
			m.refused = append(m.refused, fmt.Errorf("%s: %w", r.Event, err))
		}
		return 0, err
	}
	m.recs = append(m.recs, r)
	return uint64(len(m.recs)), nil
}

// find returns the records of event e.
func (m *memAudit) find(e audit.Event) []audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Record
	for _, r := range m.recs {
		if r.Event == e {
			out = append(out, r)
		}
	}
	return out
}

// peer is a raw UDP SIP endpoint of the test.
type peer struct {
	t    testing.TB
	conn *net.UDPConn
	gw   netip.AddrPort // where respondAs sends
}

func newPeer(t testing.TB) *peer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c}
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

func (p *peer) send(to netip.AddrPort, msg string) {
	p.t.Helper()
	msg = strings.ReplaceAll(strings.ReplaceAll(strings.TrimLeft(msg, "\n"), "\r\n", "\n"), "\n", "\r\n")
	if _, err := p.conn.WriteToUDPAddrPort([]byte(msg), to); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next message that is not a 100 Trying, or fails
// after a generous wait.
func (p *peer) read() sip.Message {
	p.t.Helper()
	buf := make([]byte, 65535)
	for {
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := p.conn.Read(buf)
		if err != nil {
			p.t.Fatalf("read: %v", err)
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			p.t.Fatalf("parse: %v", err)
		}
		if r, ok := m.(*sip.Response); ok && r.StatusCode == 100 {
			continue
		}
		return m
	}
}

func (p *peer) readResponse(want int) *sip.Response {
	p.t.Helper()
	m := p.read()
	r, ok := m.(*sip.Response)
	if !ok || r.StatusCode != want {
		p.t.Fatalf("got %s, want response %d", m.String(), want)
	}
	return r
}

func (p *peer) readRequest(method sip.RequestMethod) *sip.Request {
	p.t.Helper()
	m := p.read()
	r, ok := m.(*sip.Request)
	if !ok || r.Method != method {
		p.t.Fatalf("got %s, want %s", m.String(), method)
	}
	return r
}

// respond answers req from p with code, echoing the dialog headers.
func (p *peer) respond(to netip.AddrPort, req *sip.Request, code int, reason, extra, body string) {
	p.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\n", code, reason)
	for _, h := range req.GetHeaders("Via") {
		fmt.Fprintf(&b, "Via: %s\n", h.Value())
	}
	to2 := req.To().Value()
	if !strings.Contains(to2, "tag=") {
		to2 += ";tag=agent1"
	}
	fmt.Fprintf(&b, "From: %s\nTo: %s\nCall-ID: %s\nCSeq: %s\nContact: <sip:agent@%s>\n%s", req.From().Value(), to2, req.CallID().Value(), req.CSeq().Value(), p.addr(), extra)
	if body != "" {
		body = strings.ReplaceAll(strings.TrimLeft(body, "\n"), "\n", "\r\n")
		fmt.Fprintf(&b, "Content-Type: application/sdp\nContent-Length: %d\n\n", len(body))
		p.send(to, b.String()+body)
		return
	}
	b.WriteString("Content-Length: 0\n\n")
	p.send(to, b.String())
}

type testGW struct {
	lastInvite *sip.Request // the last INVITE an agent got, for establish
	g          *Gateway
	relay      *fakeRelay
	audit      *memAudit
	metrics    *Metrics
	carrier    netip.AddrPort
	plat       netip.AddrPort
	logs       *observer.ObservedLogs // everything the gateway logged
}

func startTestGW(t *testing.T, allow string, agent string) *testGW {
	return startTestGWWith(t, allow, agent, nil)
}

// startTestGWWith is startTestGW with the configuration changed by mod.
func startTestGWWith(t testing.TB, allow string, agent string, mod func(*Config)) *testGW {
	t.Helper()
	return startTestGWWithOpts(t, allow, agent, mod, nil)
}

// startTestGWWithOpts is startTestGWWith with the options changed by
// opt (a resolver).
func startTestGWWithOpts(t testing.TB, allow string, agent string, mod func(*Config), opt func(*Options)) *testGW {
	t.Helper()
	tg := &testGW{relay: &fakeRelay{}, audit: newMemAudit(t)}
	var err error
	tg.metrics, err = NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	pfx := []Network{MustParseNetwork(allow)}
	cfg := Config{
		Trunks: Trunks{
			Carrier:  TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:{user}@127.0.0.1:9"},
			Platform: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:agent@" + agent},
		},
		RejectUninspectable: true,
	}
	if mod != nil {
		mod(&cfg)
	}
	obs, logs := observer.New(zap.DebugLevel)
	tg.logs = logs
	log := zaptest.NewLogger(t, zaptest.Level(zap.DebugLevel), zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, obs) })))
	opts := Options{Relay: tg.relay, Audit: tg.audit, Metrics: tg.metrics, Log: log}
	if opt != nil {
		opt(&opts)
	}
	tg.g, err = New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	tg.g.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tg.g.Close(ctx)
	})
	tg.carrier, tg.plat = tg.g.Addr("carrier"), tg.g.Addr("platform")
	return tg
}

const customerSDP = `v=0
o=c 1 1 IN IP4 10.1.1.1
s=-
c=IN IP4 10.1.1.1
t=0 0
m=audio 7000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=rtcp-mux
`

func invite(from *peer, to netip.AddrPort, callID, extra, body string) string {
	body = strings.ReplaceAll(strings.TrimLeft(body, "\n"), "\n", "\r\n")
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\n"
	}
	return fmt.Sprintf(`INVITE sip:4420700000@%s SIP/2.0
Via: SIP/2.0/UDP %s;branch=z9hG4bK-%s
From: "Jane" <sip:441234567890@example.com>;tag=cust1
To: <sip:4420700000@%s>
Call-ID: %s
CSeq: 1 INVITE
Contact: <sip:customer@%s>
Max-Forwards: 70
%s%sContent-Length: %d

`, to, from.addr(), callID, to, callID, from.addr(), extra, ct, len(body)) + body
}

func TestRefusedPeer(t *testing.T) {
	tg := startTestGW(t, "10.0.0.0/8", "127.0.0.1:9")
	p := newPeer(t)
	p.send(tg.carrier, fmt.Sprintf(`OPTIONS sip:x@%s SIP/2.0
Via: SIP/2.0/UDP %s;branch=z9hG4bK-r1
From: <sip:x@y>;tag=1
To: <sip:x@%s>
Call-ID: refused-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

`, tg.carrier, p.addr(), tg.carrier))
	p.readResponse(403)
	p.send(tg.carrier, fmt.Sprintf(`OPTIONS sip:x@%s SIP/2.0
Via: SIP/2.0/UDP %s;branch=z9hG4bK-r2
From: <sip:x@y>;tag=1
To: <sip:x@%s>
Call-ID: refused-2
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

`, tg.carrier, p.addr(), tg.carrier))
	p.readResponse(403)
	tg.audit.mu.Lock()
	n := 0
	for _, r := range tg.audit.recs {
		if r.Event == audit.EventSIPPeerRefused {
			n++
			if r.Outcome != audit.Failure || r.Actor != "sip:127.0.0.1" || r.Reason != audit.ReasonPeerNotAllowed || r.Trunk != "carrier" || r.Method != "OPTIONS" {
				t.Errorf("record %+v", r)
			}
		}
	}
	tg.audit.mu.Unlock()
	if n != 1 {
		t.Errorf("sip.peer_refused records = %d, want 1 (the second within the window is not audited)", n)
	}
	if n := metricValue(tg.metrics.refusedN.WithLabelValues("carrier")); n != 2 {
		t.Errorf("refused metric = %v, want 2", n)
	}
}

func TestRefusalWindow(t *testing.T) {
	var r refusals
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	t0 := time.Unix(1000, 0)
	steps := []struct {
		addr netip.Addr
		at   time.Duration
		want bool
	}{
		{a, 0, true}, {a, time.Second, false}, {b, time.Second, true},
		{a, refusalWindow - time.Millisecond, false}, {a, refusalWindow, true}, {b, refusalWindow, false},
	}
	for i, s := range steps {
		if got := r.first(s.addr, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: first(%v, +%v) = %v, want %v", i, s.addr, s.at, got, s.want)
		}
	}
}

func TestOptionsAndRejections(t *testing.T) {
	tg := startTestGW(t, "127.0.0.0/8", "127.0.0.1:9")
	p := newPeer(t)
	p.send(tg.carrier, fmt.Sprintf(`OPTIONS sip:x@%s SIP/2.0
Via: SIP/2.0/UDP %s;branch=z9hG4bK-o1
From: <sip:x@y>;tag=1
To: <sip:x@%s>
Call-ID: opt-1
CSeq: 1 OPTIONS
Max-Forwards: 70
Content-Length: 0

`, tg.carrier, p.addr(), tg.carrier))
	res := p.readResponse(200)
	if a := headerValue(res, "Allow"); !strings.Contains(a, "INVITE") || !strings.Contains(a, "PRACK") || strings.Contains(a, "REFER") || strings.Contains(a, "MESSAGE") {
		t.Errorf("carrier's Allow = %q: want INVITE and PRACK, no REFER or MESSAGE", a)
	}
	if s := headerValue(res, "Supported"); s != "100rel, timer" {
		t.Errorf("Supported = %q", s)
	}
	if a := headerValue(res, "Accept"); !strings.Contains(a, "application/sdp") {
		t.Errorf("Accept = %q", a)
	}

	opus := "v=0\no=c 1 1 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\nm=audio 7000 RTP/AVP 111\na=rtpmap:111 opus/48000/2\n"
	tests := []struct {
		name, extra, body string
		want              int
	}{
		{"uninspectable codec", "", opus, 488},
		{"unknown body type", "", "", 415},
		{"unknown extension", "Require: foo\n", customerSDP, 420},
		{"too many hops", "", customerSDP, 483},
		{"bad sdp", "", "v=0\nthis is not sdp\n", 400},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := invite(p, tg.carrier, fmt.Sprintf("rej-%d", i), tt.extra, tt.body)
			switch tt.want {
			case 483:
				msg = strings.Replace(msg, "Max-Forwards: 70", "Max-Forwards: 1", 1)
			case 415:
				// RFC 4475 3.3.12's case: a body of a type nobody knows.
				msg = invite(p, tg.carrier, fmt.Sprintf("rej-%d", i), "Content-Type: application/x-unknown-to-all\n", "")
				msg = strings.Replace(msg, "Content-Length: 0", "Content-Length: 5", 1) + "hello"
			}
			p.send(tg.carrier, msg)
			res := p.readResponse(tt.want)
			if tt.want == 415 && !strings.Contains(headerValue(res, "Accept"), "application/sdp") {
				t.Errorf("415 without Accept: application/sdp: %q", headerValue(res, "Accept"))
			}
			if tag, _ := res.To().Params.Get("tag"); tag == "" {
				t.Error("final response without To tag")
			}
			p.send(tg.carrier, fmt.Sprintf("ACK sip:4420700000@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-rej-%d\nFrom: <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: rej-%d\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, p.addr(), i, res.To().Value(), i))
		})
	}
	for i := 0; ; i++ {
		s := tg.relay.session(i)
		if s == nil {
			break
		}
		if !s.isClosed() {
			t.Errorf("session %d of a refused call left open", i)
		}
	}
	p.send(tg.carrier, fmt.Sprintf("BYE sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-b1\nFrom: <sip:x@y>;tag=1\nTo: <sip:x@z>;tag=2\nCall-ID: nobody\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, p.addr()))
	p.readResponse(481)
}

// TestCallThrough runs a call between two raw UDP peers: the INVITE the
// agent gets is the gateway's own, with SDP pointing at the relay; SIP
// INFO digits stop at the gateway; BYE goes across.
func TestCallThrough(t *testing.T) {
	agent := newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	cust := newPeer(t)
	cust.send(tg.carrier, invite(cust, tg.carrier, "call-1", "Supported: 100rel, timer\nX-Interaction-ID: ix-77\nP-Asserted-Identity: <sip:+441234567890@carrier>\n", customerSDP))

	inv := agent.readRequest(sip.INVITE)
	sess := tg.relay.session(0)
	if sess == nil {
		t.Fatal("no media session opened")
	}
	checks := []struct {
		what, got, want string
	}{
		{"X-Interaction-ID", headerValue(inv, "X-Interaction-ID"), "ix-77"},
		{"P-Asserted-Identity", headerValue(inv, "P-Asserted-Identity"), "<sip:+441234567890@carrier>"},
		{"Supported", headerValue(inv, "Supported"), "100rel, timer"},
		{"Session-Expires", headerValue(inv, "Session-Expires"), "1800"},
		{"Min-SE", headerValue(inv, "Min-SE"), "90"},
		{"From user", inv.From().Address.User, "441234567890"},
		{"From name", inv.From().DisplayName, "Jane"},
		{"From host", inv.From().Address.Host, "127.0.0.1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if inv.CallID().Value() == "call-1" {
		t.Error("outgoing leg reuses the caller's Call-ID")
	}
	if via := inv.Via(); via.Port != int(tg.plat.Port()) {
		t.Errorf("Via port %d, want the platform trunk's %d", via.Port, tg.plat.Port())
	}
	body := string(inv.Body())
	if want := fmt.Sprintf("m=audio %d ", sess.local[media.Platform].Port()); !strings.Contains(body, want) || strings.Contains(body, "10.1.1.1") || strings.Contains(body, "rtcp-mux") {
		t.Errorf("agent's SDP not pointing at the relay:\n%s", body)
	}

	agentSDP := "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n"
	agent.respond(tg.plat, inv, 180, "Ringing", "", "")
	ringing := cust.readResponse(180)
	agent.respond(tg.plat, inv, 200, "OK", "Session-Expires: 1800;refresher=uac\nRequire: timer\n", agentSDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	if b := string(ok.Body()); !strings.Contains(b, fmt.Sprintf("m=audio %d ", sess.local[media.Carrier].Port())) || strings.Contains(b, "10.2.2.2") {
		t.Errorf("customer's SDP not pointing at the relay:\n%s", b)
	}
	if se := headerValue(ok, "Session-Expires"); se != "1800;refresher=uac" {
		t.Errorf("Session-Expires = %q", se)
	}
	sess.mu.Lock()
	remotes := fmt.Sprint(sess.remote[media.Carrier][0].Addr, sess.remote[media.Platform][0].Addr)
	sess.mu.Unlock()
	if remotes != "10.1.1.1:7000 10.2.2.2:8000" {
		t.Errorf("relay remotes = %s", remotes)
	}
	toTag := ok.To().Value()
	if t1, _ := ringing.To().Params.Get("tag"); t1 == "" || toTag != ringing.To().Value() {
		t.Errorf("180 To %q and 200 To %q: want the same gateway tag", ringing.To().Value(), toTag)
	}
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack1\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: call-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))

	for i, d := range []string{"Signal=7\r\nDuration=120\r\n", "Signal=#\r\n"} {
		cust.send(tg.carrier, fmt.Sprintf("INFO sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-info%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: call-1\nCSeq: %d INFO\nMax-Forwards: 70\nContent-Type: application/dtmf-relay\nContent-Length: %d\n\n", tg.carrier, cust.addr(), i, toTag, 2+i, len(d))+d)
		cust.readResponse(200)
	}
	sess.mu.Lock()
	digits := string(sess.digits)
	sess.mu.Unlock()
	if digits != "7#" {
		t.Errorf("relay got INFO digits %q, want 7#", digits)
	}
	if n := metricValue(tg.metrics.active); n != 1 {
		t.Errorf("active calls = %v, want 1", n)
	}

	// UPDATE with a codec change: across to the agent, turned both ways.
	upd := strings.Replace(strings.Replace(customerSDP, "m=audio 7000 RTP/AVP 0 101", "m=audio 7002 RTP/AVP 8 101", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", 1)
	upd = strings.ReplaceAll(strings.TrimLeft(upd, "\n"), "\n", "\r\n")
	cust.send(tg.carrier, fmt.Sprintf("UPDATE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-upd1\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: call-1\nCSeq: 5 UPDATE\nContact: <sip:customer@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n", tg.carrier, cust.addr(), toTag, cust.addr(), len(upd))+upd)
	au := agent.readRequest(sip.UPDATE)
	if b := string(au.Body()); !strings.Contains(b, fmt.Sprintf("m=audio %d RTP/AVP 8 101", sess.local[media.Platform].Port())) || strings.Contains(b, "m=audio 7002") {
		t.Errorf("UPDATE to agent:\n%s", b)
	}
	if !strings.Contains(string(au.Body()), "o=tonevault ") {
		t.Error("UPDATE SDP is not the gateway's")
	}
	agent.respond(tg.plat, au, 200, "OK", "", strings.Replace(agentSDP, "RTP/AVP 0 101\na=rtpmap:0 PCMU/8000", "RTP/AVP 8 101\na=rtpmap:8 PCMA/8000", 1))
	updOK := cust.readResponse(200)
	if b := string(updOK.Body()); !strings.Contains(b, fmt.Sprintf("m=audio %d RTP/AVP 8 101", sess.local[media.Carrier].Port())) {
		t.Errorf("UPDATE answer to customer:\n%s", b)
	}
	sess.mu.Lock()
	last := sess.remote[media.Carrier][len(sess.remote[media.Carrier])-1]
	sess.mu.Unlock()
	if last.Addr.Port() != 7002 || last.PayloadTypes[0].Codec != media.PCMA {
		t.Errorf("relay's carrier remote after UPDATE: %+v", last)
	}

	cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye1\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: call-1\nCSeq: 9 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), toTag))
	cust.readResponse(200)
	// The next thing the agent sees is the BYE: the INFOs never came.
	bye := agent.readRequest(sip.BYE)
	agent.respond(tg.plat, bye, 200, "OK", "", "")
	deadline := time.Now().Add(10 * time.Second)
	for !sess.isClosed() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !sess.isClosed() {
		t.Fatal("media session not closed after BYE")
	}
	if n := metricValue(tg.metrics.calls.WithLabelValues("completed")); n != 1 {
		t.Errorf("completed calls = %v", n)
	}
	if n := metricValue(tg.metrics.active); n != 0 {
		t.Errorf("active calls = %v, want 0", n)
	}
	c, ok2 := tg.g.Registry().ByCorrelation("ix-77")
	if !ok2 || c.State != StateEnded || c.Outcome != "completed" {
		t.Errorf("registry: %+v", c)
	}
	started, ended := tg.audit.find(audit.EventSIPCallStarted), tg.audit.find(audit.EventSIPCallEnded)
	if len(started) != 1 || started[0].CallID != c.ID || started[0].Trunk != "carrier" {
		t.Errorf("sip.call_started records %+v", started)
	}
	if len(ended) != 1 || ended[0].CallID != c.ID || ended[0].Reason != audit.ReasonCompleted || ended[0].Trunk != "carrier" || ended[0].Outcome != audit.Success {
		t.Errorf("sip.call_ended records %+v, want completed by a BYE from the carrier", ended)
	}
}

// metricValue reads a gauge or counter.
func metricValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if m.Gauge != nil {
		return m.Gauge.GetValue()
	}
	return m.Counter.GetValue()
}

// establish runs a call from cust to agent up to the customer's ACK and
// returns the customer's To (with the gateway's tag).
func establish(t *testing.T, tg *testGW, cust, agent *peer, callID string) string {
	t.Helper()
	cust.send(tg.carrier, invite(cust, tg.carrier, callID, "", customerSDP))
	inv := agent.readRequest(sip.INVITE)
	tg.lastInvite = inv
	agent.respond(tg.plat, inv, 200, "OK", "", "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0\n")
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	toTag := ok.To().Value()
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
	return toTag
}

// TestGatewayHangsUp: when the relay reports a media timeout, and when the
// gateway shuts down, both legs get a BYE.
func TestGatewayHangsUp(t *testing.T) {
	tests := []struct {
		name        string
		trigger     func(tg *testGW, s *fakeSession)
		wantOutcome string
	}{
		{"media timeout", func(_ *testGW, s *fakeSession) { s.err = media.ErrMediaTimeout; close(s.done) }, "media_timeout"},
		{"max duration", func(_ *testGW, s *fakeSession) { s.err = media.ErrMaxDuration; close(s.done) }, "max_duration"},
		{"media fault", func(_ *testGW, s *fakeSession) { s.err = media.ErrFault; close(s.done) }, "media_fault"},
		{"ring failed", func(_ *testGW, s *fakeSession) { s.err = media.ErrRingFailed; close(s.done) }, "ring_failed"},
		{"shutdown", func(tg *testGW, _ *fakeSession) {
			go tg.g.Close(context.Background())
		}, "shutdown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGW(t, "127.0.0.0/8", agent.addr())
			establish(t, tg, cust, agent, "hang-1")
			sess := tg.relay.session(0)
			tt.trigger(tg, sess)
			for _, p := range []struct {
				p    *peer
				from netip.AddrPort
			}{{cust, tg.carrier}, {agent, tg.plat}} {
				bye := p.p.readRequest(sip.BYE)
				p.p.respond(p.from, bye, 200, "OK", "", "")
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				calls := tg.g.Registry().List(Filter{State: StateEnded})
				if len(calls) == 1 {
					if calls[0].Outcome != tt.wantOutcome {
						t.Errorf("outcome %q, want %q", calls[0].Outcome, tt.wantOutcome)
					}
					if recs := tg.audit.find(audit.EventSIPCallEnded); len(recs) != 1 || string(recs[0].Reason) != tt.wantOutcome || recs[0].Trunk != "" {
						t.Errorf("sip.call_ended records %+v, want reason %s", recs, tt.wantOutcome)
					}
					// A fault of the call's media is a failed call.
					failed := tg.audit.find(audit.EventCallFailed)
					if fault := isFault(audit.Reason(tt.wantOutcome)); fault && (len(failed) != 1 || string(failed[0].Reason) != tt.wantOutcome || failed[0].Outcome != audit.Failure || failed[0].CallID != calls[0].ID) {
						t.Errorf("call.failed records %+v, want one with reason %s", failed, tt.wantOutcome)
					} else if !fault && len(failed) != 0 {
						t.Errorf("call.failed records %+v for a call that did not fail", failed)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("call did not end")
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// TestInDialogMatching: a request with the call's Call-ID but another tag
// is not in the dialog (481), and the call goes on.
func TestInDialogMatching(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	toTag := establish(t, tg, cust, agent, "match-1")
	tests := []struct{ name, from, to string }{
		{"wrong To tag", "<sip:441234567890@example.com>;tag=cust1", "<sip:4420700000@x>;tag=not-the-gateway"},
		{"wrong From tag", "<sip:441234567890@example.com>;tag=someone-else", toTag},
		{"no To tag", "<sip:441234567890@example.com>;tag=cust1", "<sip:4420700000@x>"},
	}
	for i, tt := range tests {
		cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-m%d\nFrom: %s\nTo: %s\nCall-ID: match-1\nCSeq: %d BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), i, tt.from, tt.to, 10+i))
		if r := cust.read().(*sip.Response); r.StatusCode != 481 {
			t.Errorf("%s: got %d, want 481", tt.name, r.StatusCode)
		}
	}
	if c := tg.g.Registry().List(Filter{State: StateAnswered}); len(c) != 1 {
		t.Fatalf("call not answered any more: %+v", c)
	}
	hangUp(t, tg, cust, agent, "match-1", toTag, 20)
}

// TestReinviteFromAgent: the agent puts the customer on hold; the
// re-INVITE reaches the customer with the relay's address and the answer
// goes back the same way.
func TestReinviteFromAgent(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGW(t, "127.0.0.0/8", agent.addr())
	toTag := establish(t, tg, cust, agent, "hold-1")
	inv := tg.lastInvite
	sess := tg.relay.session(0)
	holdSDP := "v=0\r\no=a 1 2 IN IP4 10.2.2.2\r\ns=-\r\nc=IN IP4 10.2.2.2\r\nt=0 0\r\nm=audio 8000 RTP/AVP 0\r\na=sendonly\r\n"
	agent.send(tg.plat, fmt.Sprintf("INVITE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-hold1\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 2 INVITE\nContact: <sip:agent@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n",
		inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value(), agent.addr(), len(holdSDP))+holdSDP)
	reinv := cust.readRequest(sip.INVITE)
	body := string(reinv.Body())
	if !strings.Contains(body, "a=sendonly") || !strings.Contains(body, fmt.Sprintf("m=audio %d ", sess.local[media.Carrier].Port())) || strings.Contains(body, "10.2.2.2") {
		t.Errorf("hold re-INVITE to the customer:\n%s", body)
	}
	if reinv.CallID().Value() != "hold-1" {
		t.Errorf("re-INVITE on Call-ID %s, want the customer's hold-1", reinv.CallID().Value())
	}
	cust.respond(tg.carrier, reinv, 200, "OK", "", "v=0\no=c 1 2 IN IP4 10.1.1.1\ns=-\nc=IN IP4 10.1.1.1\nt=0 0\nm=audio 7000 RTP/AVP 0\na=recvonly\n")
	cust.readRequest(sip.ACK)
	ok := agent.readResponse(200)
	if b := string(ok.Body()); !strings.Contains(b, "a=recvonly") || !strings.Contains(b, fmt.Sprintf("m=audio %d ", sess.local[media.Platform].Port())) {
		t.Errorf("answer to the agent:\n%s", b)
	}
	sess.mu.Lock()
	dir := sess.remote[media.Platform][len(sess.remote[media.Platform])-1].Direction
	sess.mu.Unlock()
	if dir != "sendonly" {
		t.Errorf("relay's platform direction = %q, want sendonly", dir)
	}
	agent.send(tg.plat, fmt.Sprintf("ACK %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-hold1ack\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 2 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n",
		inv.Contact().Address.String(), agent.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value()))
	hangUp(t, tg, cust, agent, "hold-1", toTag, 5)
}

// hangUp ends an established call from the customer's side and answers
// the agent's BYE, so that nothing is left running when the test ends.
func hangUp(t *testing.T, tg *testGW, cust, agent *peer, callID, toTag string, cseq int) {
	t.Helper()
	cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-end-%s\nFrom: <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: %d BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID, cseq))
	cust.readResponse(200)
	bye := agent.readRequest(sip.BYE)
	agent.respond(tg.plat, bye, 200, "OK", "", "")
	deadline := time.Now().Add(10 * time.Second)
	for len(tg.g.Registry().List(Filter{State: StateEnded})) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
}

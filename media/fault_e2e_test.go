package media_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/sip/caller"
)

// These tests run the whole path of a call over loopback sockets: real
// customers (package caller) typing in-band key presses, the gateway
// (package sip) with the real relay, and agents that keep every packet
// they get. A fault is injected through the relay's test hook, which
// nothing but tests can reach.

// trail keeps the gateway's audit records, each written to a real
// audit.Writer first so that one it would refuse fails the test.
type trail struct {
	t    *testing.T
	w    *audit.Writer
	mu   sync.Mutex
	recs []audit.Record
}

func newTrail(t *testing.T) *trail {
	h, err := audit.NewHMAC(audit.HMACKey{ID: "test", Key: []byte("media-fault-test-key-0123456789ab")})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.Open(context.Background(), filepath.Join(t.TempDir(), "audit.jsonl"), audit.Options{Signer: h, Sync: audit.SyncOnCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return &trail{t: t, w: w}
}

func (tr *trail) Append(ctx context.Context, r audit.Record) (uint64, error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if _, err := tr.w.Append(ctx, r); err != nil {
		if !errors.Is(err, audit.ErrClosed) {
			tr.t.Errorf("audit record %s refused: %v", r.Event, err)
		}
		return 0, err
	}
	tr.recs = append(tr.recs, r)
	return uint64(len(tr.recs)), nil
}

// of is call id's records, "event/reason".
func (tr *trail) of(id string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, r := range tr.recs {
		if r.CallID == id {
			out = append(out, string(r.Event)+"/"+string(r.Reason))
		}
	}
	return out
}

// agents answers every call the gateway places, each with an RTP socket
// of its own, and keeps each call's packets and BYE.
type agents struct {
	t     *testing.T
	addr  netip.AddrPort
	dlgs  *sipgo.DialogServerCache
	mu    sync.Mutex
	calls map[string]*agentCall // by SIP Call-ID
}

type agentCall struct {
	conn    *net.UDPConn
	mu      sync.Mutex
	pkts    []rtp.Packet
	bye     chan struct{}
	byeOnce sync.Once
}

var mAudio = regexp.MustCompile(`(?m)^m=audio (\d+) `)

func newAgents(t *testing.T) *agents {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-agents"),
		sipgo.WithUserAgentTransactionLayerOptions(sipgosip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sipgosip.WithTransportLayerLogger(log)))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := &agents{t: t, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), calls: map[string]*agentCall{}}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1"),
		sipgo.WithClientConnectionAddr(a.addr.String()), sipgo.WithClientPort(int(a.addr.Port())))
	if err != nil {
		t.Fatal(err)
	}
	a.dlgs = sipgo.NewDialogServerCache(cli, sipgosip.ContactHeader{Address: sipgosip.Uri{Scheme: "sip", User: "agent", Host: "127.0.0.1", Port: int(a.addr.Port())}})
	srv.OnInvite(a.onInvite)
	srv.OnAck(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) { _ = a.dlgs.ReadAck(req, tx) })
	srv.OnBye(func(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
		if err := a.dlgs.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 481, "No Such Call", nil))
			return
		}
		if c := a.call(req.CallID().Value()); c != nil {
			c.byeOnce.Do(func() { close(c.bye) }) // a retransmission comes here too
		}
	})
	go srv.ServeUDP(pc)
	t.Cleanup(func() { pc.Close(); ua.Close() })
	return a
}

func (a *agents) call(sipCallID string) *agentCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[sipCallID]
}

func (a *agents) onInvite(req *sipgosip.Request, tx sipgosip.ServerTransaction) {
	dlg, err := a.dlgs.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sipgosip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	defer dlg.Close()
	if mAudio.FindSubmatch(req.Body()) == nil {
		_ = dlg.Respond(488, "Not Acceptable Here", nil)
		return
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		_ = dlg.Respond(500, "Server Internal Error", nil)
		return
	}
	a.t.Cleanup(func() { conn.Close() })
	c := &agentCall{conn: conn, bye: make(chan struct{})}
	a.mu.Lock()
	a.calls[req.CallID().Value()] = c
	a.mu.Unlock()
	go c.read()
	sdp := fmt.Sprintf("v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n",
		conn.LocalAddr().(*net.UDPAddr).Port)
	_ = dlg.RespondSDP([]byte(sdp))
	<-dlg.Context().Done()
}

func (c *agentCall) read() {
	buf := make([]byte, 2048)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return
		}
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		c.mu.Lock()
		c.pkts = append(c.pkts, *p.Clone())
		c.mu.Unlock()
	}
}

func (c *agentCall) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pkts)
}

// digits runs a detector over what the agent heard, and reports any
// telephone-event packet as its digit: the agent leg must carry neither.
func (c *agentCall) digits() string {
	c.mu.Lock()
	pkts := slices.Clone(c.pkts)
	c.mu.Unlock()
	slices.SortStableFunc(pkts, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
	var pcm []int16
	var ev []byte
	for _, p := range pkts {
		switch p.PayloadType {
		case 0:
			buf := make([]int16, len(p.Payload))
			dtmf.DecodeG711(buf, p.Payload, dtmf.PCMU)
			pcm = append(pcm, buf...)
		case 101:
			ev = append(ev, 'E')
		}
	}
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	for _, e := range d.Flush(d.Process(pcm, nil)) {
		ev = append(ev, byte(e.Digit))
	}
	return string(ev)
}

// heard collects the digits the gateway reported, per call.
type heard struct {
	mu sync.Mutex
	by map[string][]byte
}

func (h *heard) digit(d media.Digit) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.by[d.CallID] = append(h.by[d.CallID], byte(d.Digit))
}

func (h *heard) of(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return string(h.by[id])
}

// gateway is the gateway under test with its peers.
type gateway struct {
	t      *testing.T
	gw     *sip.Gateway
	relay  *media.Relay
	reg    *sip.Registry
	trail  *trail
	agents *agents
	heard  *heard
}

// call is one customer's call through the gateway.
type call struct {
	id       string // the gateway's
	customer *caller.Call
	agent    *agentCall
}

func startGateway(t *testing.T, io string) *gateway {
	t.Helper()
	g := &gateway{t: t, reg: sip.NewRegistry(0), trail: newTrail(t), agents: newAgents(t), heard: &heard{by: map[string][]byte{}}}
	g.reg.Subscribe(g.heard.digit)
	mc := media.DefaultConfig()
	mc.PortMin, mc.PortMax, mc.MediaTimeout, mc.IO = 0, 0, 0, io
	relay, err := media.NewRelay(mc, media.Options{Digits: g.reg, Logger: zap.NewNop()})
	if err != nil {
		if io == media.IOUring {
			t.Skipf("io_uring unavailable here: %v", err)
		}
		t.Fatal(err)
	}
	if relay.IO() != io {
		t.Fatalf("relay on %s, want %s", relay.IO(), io)
	}
	g.relay = relay
	t.Cleanup(func() { relay.Close() })
	lo := []sip.Network{sip.MustParseNetwork("127.0.0.0/8")}
	cfg := sip.Config{
		Trunks: sip.Trunks{
			Carrier:  sip.TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: lo, Target: "sip:{user}@127.0.0.1:9"},
			Platform: sip.TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: lo, Target: "sip:agent@" + g.agents.addr.String()},
		},
		RejectUninspectable: true,
	}
	if g.gw, err = sip.New(cfg, sip.Options{Relay: sip.AdaptRelay(relay), Registry: g.reg, Audit: g.trail, Log: zap.NewNop()}); err != nil {
		t.Fatal(err)
	}
	g.gw.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		g.gw.Close(ctx)
	})
	return g
}

// dial places one customer's call and finds it in the gateway and at
// the agents.
func (g *gateway) dial() *call {
	g.t.Helper()
	before := len(g.reg.List(sip.Filter{}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := caller.Dial(ctx, caller.Options{Target: "sip:pay@" + g.gw.Addr("carrier").String(),
		Timing: caller.Timing{Press: 100 * time.Millisecond, Gap: 100 * time.Millisecond, HashPause: -1}})
	if err != nil {
		g.t.Fatalf("dial: %v", err)
	}
	g.t.Cleanup(func() { cc.Close() })
	calls := g.reg.List(sip.Filter{})
	if len(calls) != before+1 {
		g.t.Fatalf("%d calls in the registry, want %d", len(calls), before+1)
	}
	info := calls[len(calls)-1]
	c := &call{id: info.ID, customer: cc, agent: g.agents.call(info.Platform.CallID)}
	if c.agent == nil {
		g.t.Fatalf("no agent call for %s", info.Platform.CallID)
	}
	return c
}

// typeDigits has each customer press digits in-band, at once, and
// returns the error of each.
func typeDigits(calls []*call, digits string) []error {
	errs := make([]error, len(calls))
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			errs[i] = c.customer.Type(ctx, []byte(digits), caller.InBand)
		})
	}
	wg.Wait()
	return errs
}

// waitHeard waits until the gateway has reported want on call c.
func (g *gateway) waitHeard(c *call, want string) {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.heard.of(c.id) != want {
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: gateway heard %q, want %q", c.id, g.heard.of(c.id), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFailed checks that c ended with BYE on both legs, call.failed and
// sip.call_ended with reason, and that its agent got nothing after that.
func (g *gateway) waitFailed(c *call, reason audit.Reason) {
	g.t.Helper()
	select {
	case <-c.customer.Done():
		if !c.customer.RemoteHangup() {
			g.t.Errorf("%s: the customer's call ended, but not by the gateway's BYE", c.id)
		}
	case <-time.After(10 * time.Second):
		g.t.Fatalf("%s: no BYE to the customer", c.id)
	}
	select {
	case <-c.agent.bye:
	case <-time.After(10 * time.Second):
		g.t.Fatalf("%s: no BYE to the agent", c.id)
	}
	deadline := time.Now().Add(10 * time.Second)
	want := []string{"sip.call_started/", "call.failed/" + string(reason), "sip.call_ended/" + string(reason)}
	for !slices.Equal(g.trail.of(c.id), want) {
		if time.Now().After(deadline) {
			g.t.Fatalf("%s: records %v, want %v", c.id, g.trail.of(c.id), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if info, _ := g.reg.Get(c.id); info.Outcome != string(reason) {
		g.t.Errorf("%s: outcome %q, want %s", c.id, info.Outcome, reason)
	}
}

// checkMasked checks that c's agent got audio since n packets, and no
// digit at all.
func checkMasked(t *testing.T, c *call, n int) {
	t.Helper()
	if got := c.agent.count(); got <= n {
		t.Errorf("%s: agent got %d packets, no more than the %d before", c.id, got, n)
	}
	if d := c.agent.digits(); d != "" {
		t.Errorf("%s: the agent's leg carries digits %q", c.id, d)
	}
}

// skipChild skips in the child run of TestGoroutineEngine: these tests
// pick their engine themselves.
func skipChild(t *testing.T) {
	if os.Getenv("TONEVAULT_MEDIA_IO") != "" {
		t.Skip("runs on both engines in the parent run")
	}
}

func engines(t *testing.T, f func(t *testing.T, io string)) {
	skipChild(t)
	for _, io := range []string{media.IOUring, media.IOGoroutines} {
		t.Run(io, func(t *testing.T) { f(t, io) })
	}
}

// TestFaultEndsOneCallEndToEnd: four calls through the gateway; the
// relay panics in the masker of one. That call ends with a BYE to the
// customer and to the agent, call.failed and sip.call_ended (media_fault),
// and its agent hears nothing more, masked or not; the three others go
// on, masked, and their key presses still reach the gateway; a new call
// is taken. On both engines.
func TestFaultEndsOneCallEndToEnd(t *testing.T) {
	engines(t, func(t *testing.T, io string) {
		g := startGateway(t, io)
		calls := []*call{g.dial(), g.dial(), g.dial(), g.dial()}
		for i, err := range typeDigits(calls, "1") {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		for _, c := range calls {
			g.waitHeard(c, "1")
		}
		victim := calls[1]
		restore := media.SetTestFault(func(callID string) {
			if callID == victim.id {
				panic("test fault in the masker of " + callID)
			}
		})
		defer restore()
		before := make([]int, len(calls))
		for i, c := range calls {
			before[i] = c.agent.count()
		}
		errs := typeDigits(calls, "25")
		g.waitFailed(victim, audit.ReasonMediaFault)
		frozen := victim.agent.count()
		if !errors.Is(errs[1], caller.ErrHungUp) && errs[1] != nil {
			t.Errorf("victim's typing: %v", errs[1])
		}
		for i, c := range calls {
			if c == victim {
				continue
			}
			if errs[i] != nil {
				t.Fatalf("%s: %v", c.id, errs[i])
			}
			g.waitHeard(c, "125")
			checkMasked(t, c, before[i])
		}
		if d := victim.agent.digits(); d != "" {
			t.Errorf("victim's agent heard digits %q", d)
		}
		if n := victim.agent.count(); n != frozen {
			t.Errorf("victim's agent got %d packets after its BYE", n-frozen)
		}
		if got := g.heard.of(victim.id); strings.ContainsAny(got, "25") {
			t.Errorf("victim's digits %q: a press after the fault was reported", got)
		}
		// A new call, and the others' end, as usual.
		n := g.dial()
		if err := typeDigits([]*call{n}, "7")[0]; err != nil {
			t.Fatal(err)
		}
		g.waitHeard(n, "7")
		checkMasked(t, n, 0)
		for _, c := range append(calls, n) {
			if c == victim {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.customer.Hangup(ctx); err != nil {
				t.Errorf("%s: hang up: %v", c.id, err)
			}
			cancel()
			if recs := g.trail.of(c.id); slices.Contains(recs, "call.failed/media_fault") {
				t.Errorf("%s: %v", c.id, recs)
			}
		}
	})
}

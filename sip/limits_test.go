package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// newPeerAt is newPeer on another loopback address: another source.
func newPeerAt(t *testing.T, ip string) *peer {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &peer{t: t, conn: c}
}

// startLimitedGW is startTestGW with limits, open to 127.0.0.0/8.
func startLimitedGW(t *testing.T, agent string, lim Limits) *testGW {
	t.Helper()
	tg := &testGW{relay: &fakeRelay{}, audit: newMemAudit(t)}
	var err error
	if tg.metrics, err = NewMetrics(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	pfx := []Network{MustParseNetwork("127.0.0.0/8")}
	tg.g, err = New(Config{
		Trunks: Trunks{
			Carrier:  TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:{user}@127.0.0.1:9"},
			Platform: TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Transports: []string{"udp"}, Allow: pfx, Target: "sip:agent@" + agent},
		},
		RejectUninspectable: true,
		Limits:              lim,
	}, Options{Relay: tg.relay, Audit: tg.audit, Metrics: tg.metrics, Log: zaptest.NewLogger(t)})
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

func options(from *peer, to netip.AddrPort, n int) string {
	return fmt.Sprintf("OPTIONS sip:x@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-o%d\nFrom: <sip:x@y>;tag=1\nTo: <sip:x@%s>\nCall-ID: opt-%d@%s\nCSeq: 1 OPTIONS\nMax-Forwards: 70\nContent-Length: 0\n\n",
		to, from.addr(), n, to, n, from.addr())
}

func limitedCount(t *testing.T, m *Metrics, trunk, reason string) float64 {
	t.Helper()
	return metricValue(m.limitedN.WithLabelValues(trunk, reason))
}

// TestSourceRate: one source over its bucket gets 503 with Retry-After;
// another source, and the first source's in-dialog requests, do not.
func TestSourceRate(t *testing.T) {
	tg := startLimitedGW(t, "127.0.0.1:9", Limits{RequestsPerSecond: 0.001, Burst: 3})
	a, b := newPeer(t), newPeerAt(t, "127.0.0.2")
	for i := range 5 {
		a.send(tg.carrier, options(a, tg.carrier, i))
		r := a.read().(*sip.Response)
		switch {
		case i < 3 && r.StatusCode != 200:
			t.Fatalf("request %d within the burst: %d", i, r.StatusCode)
		case i >= 3 && (r.StatusCode != 503 || r.GetHeader("Retry-After") == nil):
			t.Fatalf("request %d over the burst: %s", i, r.StartLine())
		}
	}
	b.send(tg.carrier, options(b, tg.carrier, 10))
	b.readResponse(200)
	// In a dialog (a To tag): not counted, answered as ever (no such
	// dialog: 481).
	a.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye9\nFrom: <sip:x@y>;tag=1\nTo: <sip:x@y>;tag=2\nCall-ID: nodialog\nCSeq: 2 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, a.addr()))
	a.readResponse(481)
	if n := limitedCount(t, tg.metrics, "carrier", "rate"); n != 2 {
		t.Errorf("limited{rate} = %v, want 2", n)
	}
}

// TestCallCaps: a source at max_calls_per_source gets 503 while another
// source's call connects; at max_calls everyone does; an ended call
// makes room.
func TestCallCaps(t *testing.T) {
	agent := newPeer(t)
	tg := startLimitedGW(t, agent.addr(), Limits{MaxCalls: 2, MaxCallsPerSource: 1})
	a, b, c := newPeer(t), newPeerAt(t, "127.0.0.2"), newPeerAt(t, "127.0.0.3")
	toA := establish(t, tg, a, agent, "cap-a1")

	a.send(tg.carrier, invite(a, tg.carrier, "cap-a2", "", customerSDP))
	if r := a.readResponse(503); r.GetHeader("Retry-After") == nil {
		t.Error("no Retry-After")
	}
	establish(t, tg, b, agent, "cap-b1")
	c.send(tg.carrier, invite(c, tg.carrier, "cap-c1", "", customerSDP))
	c.readResponse(503)
	if limitedCount(t, tg.metrics, "carrier", "max_calls_per_source") != 1 || limitedCount(t, tg.metrics, "carrier", "max_calls") != 1 {
		t.Error("refusals not counted by reason")
	}

	hangUp(t, tg, a, agent, "cap-a1", toA, 2)
	// The BYE is answered before the call is let go of: wait for that.
	for deadline := time.Now().Add(10 * time.Second); len(tg.g.Registry().List(Filter{State: StateAnswered})) != 1; {
		if time.Now().After(deadline) {
			t.Fatal("the hung-up call is still up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	establish(t, tg, a, agent, "cap-a3")
}

// optionsProbe is an OPTIONS outside a dialog, as a load balancer probes.
func optionsProbe(from *peer, to netip.AddrPort, callID string) string {
	return fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s\r\nFrom: <sip:lb@%s>;tag=lb1\r\nTo: <sip:%s>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		to, from.addr(), callID, from.addr(), to, callID)
}

// TestDrain: draining refuses new calls with 503 (no Retry-After: go
// elsewhere) and load balancers' OPTIONS probes with 503, reports not
// ready, and ends when the last call does; a drain cut short leaves the
// calls to Close.
func TestDrain(t *testing.T) {
	agent, cust, late := newPeer(t), newPeer(t), newPeerAt(t, "127.0.0.2")
	tg := startLimitedGW(t, agent.addr(), Limits{})
	to1 := establish(t, tg, cust, agent, "drain-1")
	left := make(chan int, 1)
	go func() { left <- tg.g.Drain(context.Background()) }()
	for tg.g.Ready() {
		time.Sleep(time.Millisecond)
	}
	late.send(tg.carrier, invite(late, tg.carrier, "drain-late", "", customerSDP))
	if r := late.readResponse(503); r.GetHeader("Retry-After") != nil {
		t.Error("Retry-After while draining")
	}
	// A load balancer's probe says so too (Kamailio takes the node out).
	late.send(tg.carrier, optionsProbe(late, tg.carrier, "drain-probe"))
	late.readResponse(503)
	select {
	case n := <-left:
		t.Fatalf("Drain returned (%d left) with a call up", n)
	default:
	}
	hangUp(t, tg, cust, agent, "drain-1", to1, 2)
	if n := <-left; n != 0 {
		t.Errorf("Drain: %d calls left after the last ended", n)
	}

	// Cut short: the call is left, and Close ends it with BYE.
	agent2, cust2 := newPeer(t), newPeer(t)
	tg2 := startLimitedGW(t, agent2.addr(), Limits{})
	establish(t, tg2, cust2, agent2, "drain-2")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if n := tg2.g.Drain(ctx); n != 1 {
		t.Errorf("Drain cut short: %d left, want 1", n)
	}
	go tg2.g.Close(context.Background())
	for _, p := range []struct {
		p    *peer
		from netip.AddrPort
	}{{cust2, tg2.carrier}, {agent2, tg2.plat}} {
		bye := p.p.readRequest(sip.BYE)
		p.p.respond(p.from, bye, 200, "OK", "", "")
	}
}

// TestSourcesBounded: the table of sources stays under its cap; new
// sources past it share the overflow entry.
func TestSourcesBounded(t *testing.T) {
	s := newSources(Limits{RequestsPerSecond: 0.001, Burst: 1, MaxCalls: 10, MaxCallsPerSource: 10})
	live := func(string) bool { return false }
	for i := range maxSources + 100 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		s.allow(a, live) // empties its bucket: not forgettable
	}
	if len(s.m) > maxSources {
		t.Errorf("%d sources kept", len(s.m))
	}
	if ok, _ := s.allow(netip.MustParseAddr("10.200.0.1"), live); ok {
		t.Error("a new source past the cap got its own full bucket")
	}
	// IPv6: one /64 is one source.
	s2 := newSources(Limits{RequestsPerSecond: 0.001, Burst: 1, MaxCalls: 10, MaxCallsPerSource: 10})
	s2.allow(netip.MustParseAddr("2001:db8::1"), live)
	if ok, _ := s2.allow(netip.MustParseAddr("2001:db8::2"), live); ok {
		t.Error("two addresses of one /64 had two buckets")
	}
	if ok, _ := s2.allow(netip.MustParseAddr("2001:db8:0:1::1"), live); !ok {
		t.Error("another /64 shared the bucket")
	}
}

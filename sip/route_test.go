package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// closedPort is a loopback port nothing listens on (UDP and TCP): a
// datagram to it gets ICMP port unreachable, a connection is refused.
func closedPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return port
}

// blackhole is a loopback UDP socket that reads and never answers.
func blackhole(t *testing.T) *peer {
	t.Helper()
	return newPeer(t)
}

// TestFailover: the first target is dead in each of the ways a target
// dies; the call reaches the second one, is answered, and the failover
// is counted with its reason. The ICMP case waits 10 s before a timeout
// would fire, so only the ICMP error can move it on at once.
func TestFailover(t *testing.T) {
	tests := []struct {
		name    string
		first   func(t *testing.T, agent *peer) (target string, p *peer)
		timeout time.Duration
		reason  string
	}{
		{"ICMP port unreachable", func(t *testing.T, _ *peer) (string, *peer) {
			return fmt.Sprintf("sip:agent@127.0.0.1:%d", closedPort(t)), nil
		}, 10 * time.Second, "unreachable"},
		{"ICMP host unreachable (another loopback address, no socket)", func(t *testing.T, agent *peer) (string, *peer) {
			return fmt.Sprintf("sip:agent@127.0.0.2:%d", closedPort(t)), nil
		}, 10 * time.Second, "unreachable"},
		{"no answer", func(t *testing.T, _ *peer) (string, *peer) {
			b := blackhole(t)
			return "sip:agent@" + b.addr(), b
		}, 300 * time.Millisecond, "timeout"},
		{"TCP refused", func(t *testing.T, _ *peer) (string, *peer) {
			return fmt.Sprintf("sip:agent@127.0.0.1:%d;transport=tcp", closedPort(t)), nil
		}, 10 * time.Second, "refused"},
		{"503", func(t *testing.T, _ *peer) (string, *peer) {
			p := newPeer(t)
			return "sip:agent@" + p.addr(), p
		}, 10 * time.Second, "unavailable"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			var first *peer
			var firstTarget string
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				firstTarget, first = tt.first(t, agent)
				c.Trunks.Platform.Transports = []string{"udp", "tcp"}
				c.Trunks.Platform.Target = firstTarget
				c.Trunks.Platform.Failover = []string{"sip:agent@" + agent.addr()}
				c.Trunks.Platform.FailoverTimeout = tt.timeout
			})
			callID := fmt.Sprintf("fo-%d", i)
			start := time.Now()
			cust.send(tg.carrier, invite(cust, tg.carrier, callID, "", customerSDP))
			if tt.reason == "unavailable" {
				inv := first.readRequest(sip.INVITE)
				first.respond(tg.plat, inv, 503, "Service Unavailable", "", "")
				first.readRequest(sip.ACK)
			}
			inv := agent.readRequest(sip.INVITE)
			t.Logf("second target reached %v after the INVITE", time.Since(start).Round(time.Millisecond))
			agent.respond(tg.plat, inv, 200, "OK", "", agentEarlySDP)
			agent.readRequest(sip.ACK)
			ok := cust.readResponse(200)
			toTag := ok.To().Value()
			cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
			if n := metricValue(tg.metrics.failover.WithLabelValues("platform", tt.reason)); n != 1 {
				t.Errorf("failovers{platform,%s} = %v, want 1", tt.reason, n)
			}
			hangUp(t, tg, cust, agent, callID, toTag, 9)
		})
	}
}

// TestFailoverLateAnswer: a target given up for saying nothing in time
// that rings afterwards gets a CANCEL; the call is the next target's.
func TestFailoverLateAnswer(t *testing.T) {
	agent, cust, slow := newPeer(t), newPeer(t), newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
		c.Trunks.Platform.Target = "sip:agent@" + slow.addr()
		c.Trunks.Platform.Failover = []string{"sip:agent@" + agent.addr()}
		c.Trunks.Platform.FailoverTimeout = 200 * time.Millisecond
	})
	cust.send(tg.carrier, invite(cust, tg.carrier, "late-1", "", customerSDP))
	first := slow.readRequest(sip.INVITE)
	inv := agent.readRequest(sip.INVITE)
	slow.respond(tg.plat, first, 180, "Ringing", "", "")
	cancel := slow.readRequest(sip.CANCEL)
	if cancel.CallID().Value() != first.CallID().Value() || cancel.CSeq().SeqNo != first.CSeq().SeqNo {
		t.Errorf("CANCEL %s/%d, want the slow target's INVITE %s/%d", cancel.CallID().Value(), cancel.CSeq().SeqNo, first.CallID().Value(), first.CSeq().SeqNo)
	}
	if inv.CSeq().SeqNo == first.CSeq().SeqNo || via(inv) == via(first) {
		t.Error("the second INVITE is not a new transaction")
	}
	agent.respond(tg.plat, inv, 200, "OK", "", agentEarlySDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-late\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: late-1\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), ok.To().Value()))
	hangUp(t, tg, cust, agent, "late-1", ok.To().Value(), 9)
}

func via(r *sip.Request) string {
	b, _ := r.Via().Params.Get("branch")
	return b
}

// TestEveryTargetDown: the caller gets 503 when no target answers, and
// the trail says the call failed with 503.
func TestEveryTargetDown(t *testing.T) {
	cust := newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", "127.0.0.1:9", func(c *Config) {
		c.Trunks.Platform.Target = fmt.Sprintf("sip:agent@127.0.0.1:%d", closedPort(t))
		c.Trunks.Platform.Failover = []string{fmt.Sprintf("sip:agent@127.0.0.1:%d", closedPort(t))}
		c.Trunks.Platform.FailoverTimeout = 10 * time.Second
	})
	start := time.Now()
	cust.send(tg.carrier, invite(cust, tg.carrier, "down-1", "", customerSDP))
	cust.readResponse(503)
	t.Logf("503 %v after the INVITE", time.Since(start).Round(time.Millisecond))
	recs := waitRecords(t, tg, audit.EventSIPCallEnded, 1)
	if recs[0].Reason != audit.ReasonFailed || recs[0].Status != 503 {
		t.Errorf("sip.call_ended %+v", recs[0])
	}
}

// TestSRV: the platform target is a name without a port: its SRV
// records (a dead target first) are tried in priority order, each on
// its addresses; a name with a port is its A records, each tried. The
// Request-URI keeps the name.
func TestSRV(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	ap := netip.MustParseAddrPort(agent.addr())
	dead := closedPort(t)
	lo, lo2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	dns := callertest.NewDNS(t, callertest.Zone{
		SRV: map[string][]callertest.SRV{
			"_sip._udp.agents.test": {{Priority: 20, Weight: 1, Port: ap.Port(), Target: "live.agents.test"}, {Priority: 10, Weight: 1, Port: uint16(dead), Target: "dead.agents.test"}},
		},
		Hosts: map[string][]netip.Addr{
			"live.agents.test": {lo}, "dead.agents.test": {lo}, "agents.test": {lo},
			"pair.agents.test": {lo2, lo},
		},
	})
	tests := []struct {
		name, target, wantHost string
		wantQuery              string
	}{
		{"SRV", "sip:agent@agents.test", "agents.test", "SRV _sip._udp.agents.test"},
		{"two A records", fmt.Sprintf("sip:agent@pair.agents.test:%d", ap.Port()), "pair.agents.test", "A pair.agents.test"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := startTestGWWithOpts(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				c.Trunks.Platform.Target = tt.target
				c.Trunks.Platform.FailoverTimeout = 10 * time.Second
			}, func(o *Options) { o.Resolver = dns.Resolver() })
			callID := fmt.Sprintf("srv-%d", i)
			start := time.Now()
			cust.send(tg.carrier, invite(cust, tg.carrier, callID, "", customerSDP))
			inv := agent.readRequest(sip.INVITE)
			t.Logf("live target reached %v after the INVITE", time.Since(start).Round(time.Millisecond))
			if inv.Recipient.Host != tt.wantHost {
				t.Errorf("Request-URI %s, want host %s", inv.Recipient.String(), tt.wantHost)
			}
			if n := metricValue(tg.metrics.failover.WithLabelValues("platform", "unreachable")); n != 1 {
				t.Errorf("failovers{unreachable} = %v, want 1 (the dead record first)", n)
			}
			if q := dns.Queries(); !slices.Contains(q, tt.wantQuery) {
				t.Errorf("DNS queries %v, want %q among them", q, tt.wantQuery)
			}
			agent.respond(tg.plat, inv, 200, "OK", "", agentEarlySDP)
			agent.readRequest(sip.ACK)
			ok := cust.readResponse(200)
			cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, ok.To().Value(), callID))
			hangUp(t, tg, cust, agent, callID, ok.To().Value(), 9)
		})
	}
	t.Run("name that does not resolve", func(t *testing.T) {
		tg := startTestGWWithOpts(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
			c.Trunks.Platform.Target = "sip:agent@nowhere.test"
		}, func(o *Options) { o.Resolver = dns.Resolver() })
		cust.send(tg.carrier, invite(cust, tg.carrier, "srv-none", "", customerSDP))
		cust.readResponse(503)
	})
}

// TestResolveOrder: SRV records come in priority order, and a target
// marked down goes after those that are up.
func TestResolveOrder(t *testing.T) {
	dns := callertest.NewDNS(t, callertest.Zone{
		SRV: map[string][]callertest.SRV{
			"_sip._tcp.pbx.test":  {{Priority: 2, Weight: 1, Port: 5070, Target: "b.pbx.test"}, {Priority: 1, Weight: 1, Port: 5060, Target: "a.pbx.test"}},
			"_sips._tcp.pbx.test": {{Priority: 1, Weight: 1, Port: 5061, Target: "a.pbx.test"}},
		},
		Hosts: map[string][]netip.Addr{"a.pbx.test": {netip.MustParseAddr("192.0.2.1")}, "b.pbx.test": {netip.MustParseAddr("192.0.2.2")}},
	})
	r := newRoutes(dns.Resolver())
	keys := func(uri string) []string {
		var u sip.Uri
		if err := sip.ParseUri(uri, &u); err != nil {
			t.Fatal(err)
		}
		ds, err := r.destinations(context.Background(), u)
		if err != nil {
			t.Fatalf("%s: %v", uri, err)
		}
		var out []string
		for _, d := range r.order(ds) {
			out = append(out, d.key())
		}
		return out
	}
	tests := []struct {
		uri  string
		want string
	}{
		{"sip:x@pbx.test;transport=tcp", "tcp:192.0.2.1:5060 tcp:192.0.2.2:5070"},
		{"sips:x@pbx.test", "tls:a.pbx.test:5061"},
		{"sip:x@192.0.2.9", "udp:192.0.2.9:5060"},
		{"sip:x@[2001:db8::1]:5080", "udp:[2001:db8::1]:5080"},
	}
	for _, tt := range tests {
		if got := strings.Join(keys(tt.uri), " "); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.uri, got, tt.want)
		}
	}
	r.markDown("tcp:192.0.2.1:5060", time.Minute)
	if got := strings.Join(keys("sip:x@pbx.test;transport=tcp"), " "); got != "tcp:192.0.2.2:5070 tcp:192.0.2.1:5060" {
		t.Errorf("with the first down: %s", got)
	}
	r.markUp("tcp:192.0.2.1:5060")
	if got := strings.Join(keys("sip:x@pbx.test;transport=tcp"), " "); got != "tcp:192.0.2.1:5060 tcp:192.0.2.2:5070" {
		t.Errorf("up again: %s", got)
	}
}

// autoPeer answers OPTIONS (when told to) and hands every other message
// to the test.
type autoPeer struct {
	*peer
	answer  atomic.Bool
	options atomic.Int32
	msgs    chan sip.Message
}

func newAutoPeer(t *testing.T) *autoPeer {
	a := &autoPeer{peer: newPeer(t), msgs: make(chan sip.Message, 16)}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := a.conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				continue
			}
			if r, ok := m.(*sip.Request); ok && r.Method == sip.OPTIONS {
				a.options.Add(1)
				if a.answer.Load() {
					a.respondQuiet(from, r)
				}
				continue
			}
			if r, ok := m.(*sip.Response); ok && r.StatusCode == 100 {
				continue
			}
			a.msgs <- m
		}
	}()
	return a
}

func (a *autoPeer) respondQuiet(to netip.AddrPort, req *sip.Request) {
	msg := fmt.Sprintf("SIP/2.0 200 OK\r\nVia: %s\r\nFrom: %s\r\nTo: %s;tag=opt\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
		req.Via().Value(), req.From().Value(), req.To().Value(), req.CallID().Value(), req.CSeq().Value())
	_, _ = a.conn.WriteToUDPAddrPort([]byte(msg), to)
}

func (a *autoPeer) nextRequest(t *testing.T, method sip.RequestMethod) *sip.Request {
	t.Helper()
	select {
	case m := <-a.msgs:
		r, ok := m.(*sip.Request)
		if !ok || r.Method != method {
			t.Fatalf("got %s, want %s", m.String(), method)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s", method)
	}
	return nil
}

// TestProbes: OPTIONS probes mark a target that does not answer down,
// and the next call goes straight to the one that does; once the first
// answers again it is marked up, and calls go to it first again.
func TestProbes(t *testing.T) {
	a, b := newAutoPeer(t), newAutoPeer(t)
	b.answer.Store(true)
	cust := newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", a.addr(), func(c *Config) {
		c.Trunks.Platform.Failover = []string{"sip:agent@" + b.addr()}
		c.Trunks.Platform.ProbeInterval = 100 * time.Millisecond
		c.Trunks.Platform.FailoverTimeout = 300 * time.Millisecond
	})
	upA := func() float64 { return metricValue(tg.metrics.targets.WithLabelValues("platform", "udp:"+a.addr())) }
	waitFor := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: never", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	downA := func() bool { return tg.g.platform.routes.isDown("udp:" + a.addr()) }
	waitFor("A probed and down", func() bool { return a.options.Load() > 0 && downA() })
	if upA() != 0 {
		t.Errorf("tonevault_sip_target_up of A = %v, want 0", upA())
	}
	call := func(callID string, to *autoPeer) {
		t.Helper()
		cust.send(tg.carrier, invite(cust, tg.carrier, callID, "", customerSDP))
		inv := to.nextRequest(t, sip.INVITE)
		to.respond(tg.plat, inv, 200, "OK", "", agentEarlySDP)
		to.nextRequest(t, sip.ACK)
		ok := cust.readResponse(200)
		toTag := ok.To().Value()
		cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
		cust.send(tg.carrier, fmt.Sprintf("BYE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-bye-%s\nFrom: <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 9 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
		cust.readResponse(200)
		bye := to.nextRequest(t, sip.BYE)
		to.respond(tg.plat, bye, 200, "OK", "", "")
	}
	call("probe-1", b) // A is down: B first, A never sees the INVITE
	if n := metricValue(tg.metrics.failover.WithLabelValues("platform", "timeout")); n != 0 {
		t.Errorf("the call waited for A (%v failovers): a target marked down goes last", n)
	}
	a.answer.Store(true)
	waitFor("A up again", func() bool { return !downA() })
	if upA() != 1 {
		t.Errorf("tonevault_sip_target_up of A = %v, want 1", upA())
	}
	call("probe-2", a)
	select {
	case m := <-a.msgs:
		t.Errorf("A got %s", m.String())
	case m := <-b.msgs:
		t.Errorf("B got %s", m.String())
	default:
	}
}

package sipe2e

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// closedPort is a loopback UDP port nothing listens on: a datagram to it
// gets ICMP port unreachable.
func closedPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return p
}

// twoSIPp runs the agent scenario uas (with extra arguments) behind the
// gateway gw and the customer scenario uac against it, and waits for
// both.
func twoSIPp(t *testing.T, gw *gateway, agentPort int, uac, uas string, subst map[string]string, agentArgs ...string) {
	t.Helper()
	rtp := listenAgentRTP(t)
	args := append([]string{"-p", strconv.Itoa(agentPort), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)), "-key", "rtp_port", strconv.Itoa(rtp.port())}, agentArgs...)
	agent := startSIPp(t, "agent", substituted(t, uas, subst), args...)
	time.Sleep(200 * time.Millisecond)
	cust := startSIPp(t, "customer", substituted(t, uac, subst), "-p", strconv.Itoa(freePorts(t, 1)), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)),
		"-s", "4420700000", "-key", "corr", "ix-flows", gw.g.Addr("carrier").String())
	cust.wait(t)
	agent.wait(t)
}

// TestPRACKBothLegs: the agent's reliable 183 gets the gateway's PRACK
// (the agent's scenario checks its RAck), and the customer, who supports
// 100rel, gets the gateway's own reliable 183 and PRACKs it (the
// customer's scenario checks Require and RSeq, the 200 to its PRACK and a
// 2xx without a second answer).
func TestPRACKBothLegs(t *testing.T) {
	requireSIPp(t)
	agentPort := freePorts(t, 1)
	gw := startGateway(t, agentPort)
	twoSIPp(t, gw, agentPort, "uac_prack.xml", "uas_prack.xml", nil)
	if c := waitEnded(t, gw, 1)[0]; c.Outcome != "completed" || c.Answer.IsZero() {
		t.Errorf("outcome %q, answered %v", c.Outcome, !c.Answer.IsZero())
	}
}

// TestRequire420: an INVITE requiring an extension the gateway does not
// do gets 420 with Unsupported (the scenario checks both).
func TestRequire420(t *testing.T) {
	requireSIPp(t)
	gw := startGateway(t, closedPort(t))
	cust := startSIPp(t, "customer", "uac_require.xml", "-p", strconv.Itoa(freePorts(t, 1)), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)),
		"-s", "4420700000", gw.g.Addr("carrier").String())
	cust.wait(t)
	if n := len(gw.reg.List(sip.Filter{})); n != 0 {
		t.Errorf("%d calls registered for a refused INVITE", n)
	}
}

// TestSessionExpiry: both peers take the refresher's part and neither
// refreshes (session interval 3 s, the gateway's min_se lowered for the
// test): each gets a BYE from the gateway (its scenario waits for it),
// and the trail says the session expired.
func TestSessionExpiry(t *testing.T) {
	requireSIPp(t)
	agentPort := freePorts(t, 1)
	gw := startGatewayMod(t, agentPort, "", false, func(c *sip.Config) {
		c.SessionTimer = sip.SessionTimerConfig{Expires: 3 * time.Second, MinSE: 2 * time.Second}
	})
	twoSIPp(t, gw, agentPort, "uac_timer.xml", "uas_timer.xml", nil)
	c := waitEnded(t, gw, 1)[0]
	t.Logf("call ended %v after it started (session interval 3 s)", c.End.Sub(c.Start).Round(time.Millisecond))
	if c.Outcome != string(audit.ReasonSessionExpired) {
		t.Errorf("outcome %q, want session_expired", c.Outcome)
	}
	recs := gw.audit.records(audit.EventSIPCallEnded)
	if len(recs) != 1 || recs[0].Reason != audit.ReasonSessionExpired || recs[0].CallID != c.ID {
		t.Errorf("sip.call_ended records %+v", recs)
	}
	if n := gw.metric(t, "tonevault_sip_sessions_expired_total", nil); n != 1 {
		t.Errorf("tonevault_sip_sessions_expired_total = %v", n)
	}
}

// TestForking: two early dialogs answer the gateway's INVITE, each with
// early media; the first 2xx wins and the other dialog's 2xx gets ACK
// and BYE (the agent's scenario checks each tag). The customer keeps one
// dialog, and what it says after the answer reaches the winner's media
// address only.
func TestForking(t *testing.T) {
	requireSIPp(t)
	agentPort := freePorts(t, 1)
	gw := startGateway(t, agentPort)
	rtpB := listenAgentRTP(t)
	pcap, plays := writePCMUPcap(t, tonePCM(""))
	subst := map[string]string{"PCAP": pcap, "PLAY_MS": strconv.Itoa(int((plays + 300*time.Millisecond) / time.Millisecond))}
	rtpA := listenAgentRTP(t)
	agent := startSIPp(t, "agent", substituted(t, "uas_fork.xml", subst), "-p", strconv.Itoa(agentPort), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)),
		"-key", "rtp_port", strconv.Itoa(rtpA.port()), "-key", "rtp_port_b", strconv.Itoa(rtpB.port()))
	time.Sleep(200 * time.Millisecond)
	cust := startSIPp(t, "customer", substituted(t, "uac_fork.xml", subst), "-p", strconv.Itoa(freePorts(t, 1)), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)),
		"-s", "4420700000", "-key", "corr", "ix-fork", gw.g.Addr("carrier").String())
	cust.wait(t)
	agent.wait(t)
	if c := waitEnded(t, gw, 1)[0]; c.Outcome != "completed" || c.Answer.IsZero() {
		t.Errorf("outcome %q, answered %v", c.Outcome, !c.Answer.IsZero())
	}
	a, b := len(rtpA.packets()), len(rtpB.packets())
	t.Logf("the winner's media address got %d packets, the loser's %d", a, b)
	if a < 10 || b != 0 {
		t.Errorf("the customer's audio went to the winner %d times and to the losing dialog %d times; want all to the winner", a, b)
	}
}

// TestFailoverToSecondAgent: the platform's first target is dead (a
// closed port: ICMP port unreachable) and the call reaches the second
// one, a SIPp agent, and is answered; given as a list, then as a DNS SRV
// name whose records a DNS server of the test gives (the dead one first).
func TestFailoverToSecondAgent(t *testing.T) {
	tests := []struct {
		name string
		srv  bool
	}{
		{"target list", false},
		{"DNS SRV", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireSIPp(t)
			agentPort, dead := freePorts(t, 1), closedPort(t)
			var dns *callertest.DNS
			mod := func(c *sip.Config) {
				c.Trunks.Platform.Target = "sip:agent@127.0.0.1:" + strconv.Itoa(dead)
				c.Trunks.Platform.Failover = []string{"sip:agent@127.0.0.1:" + strconv.Itoa(agentPort)}
			}
			var opt func(*sip.Options)
			if tt.srv {
				lo := netip.MustParseAddr("127.0.0.1")
				dns = callertest.NewDNS(t, callertest.Zone{
					SRV: map[string][]callertest.SRV{"_sip._udp.agents.test": {
						{Priority: 10, Weight: 1, Port: uint16(dead), Target: "dead.agents.test"},
						{Priority: 20, Weight: 1, Port: uint16(agentPort), Target: "live.agents.test"},
					}},
					Hosts: map[string][]netip.Addr{"dead.agents.test": {lo}, "live.agents.test": {lo}},
				})
				mod = func(c *sip.Config) { c.Trunks.Platform.Target = "sip:agent@agents.test" }
				opt = func(o *sip.Options) { o.Resolver = dns.Resolver() }
			}
			gw := startGatewayOpts(t, agentPort, "", false, mod, opt)
			twoSIPp(t, gw, agentPort, "uac_basic.xml", "uas_basic.xml", nil)
			c := waitEnded(t, gw, 1)[0]
			if c.Outcome != "completed" || c.Answer.IsZero() {
				t.Errorf("outcome %q, answered %v", c.Outcome, !c.Answer.IsZero())
			}
			unreachable := gw.metric(t, "tonevault_sip_failovers_total", map[string]string{"trunk": "platform", "reason": "unreachable"})
			all := gw.metric(t, "tonevault_sip_failovers_total", nil)
			t.Logf("answered %v after the INVITE came in; failovers: %v (%v on ICMP unreachable)", c.Answer.Sub(c.Start).Round(time.Millisecond), all, unreachable)
			if all != 1 {
				t.Errorf("%v failovers, want 1 (the dead target)", all)
			}
			if tt.srv && !slices.Contains(dns.Queries(), "SRV _sip._udp.agents.test") {
				t.Errorf("DNS queries %v: no SRV", dns.Queries())
			}
		})
	}
}

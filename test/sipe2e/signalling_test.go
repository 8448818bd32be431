package sipe2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf"
)

// binaryBodies writes the binary message bodies of the scenarios (RFC
// 4733 event blocks, an ISUP IAM) and returns the substitutions that
// point the scenarios' [file] keywords at them.
func binaryBodies(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"TV_TE_INFO":  {2, 0x8a, 0x03, 0x20}, // key 2, E bit, 100 ms at 8 kHz
		"TV_TE_START": {3, 0x0a, 0x07, 0xd0}, // key 3 pressed, 2000 ms (Cisco: milliseconds)
		"TV_TE_END":   {3, 0x8a, 0x00, 0x78}, // key 3 released after 120 ms
		// A made-up ISUP IAM: binary, a CR LF inside.
		"TV_ISUP_IAM": {0x01, 0x00, 0x49, 0x00, 0x00, 0x03, 0x02, 0x00, 0x07, 0x04, 0x10, 0x00, 0x33, 0x63, 0x21, 0x43, 0x00, 0x0d, 0x0a, 0x00},
	}
	subst := map[string]string{}
	for name, b := range files {
		p := filepath.Join(dir, strings.ToLower(name)+".bin")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		subst[name] = p
	}
	return subst
}

// TestSignalledDigits: key presses the customer sends in the signalling
// in every form carriers use (Nortel INFO, INFO with an RFC 4733 block,
// Cisco's NOTIFY at the start and the end of a press, KPML NOTIFY, a
// multipart INFO) are answered by the gateway (the customer's scenario
// checks each 200), never reach the agent (the agent's scenario fails on
// any request it does not expect; TestAgentScenarioSeesForwarded shows
// it does), and are each reported once: 12345. MESSAGE, a text INFO and
// a NOTIFY of another event are refused and go nowhere either.
func TestSignalledDigits(t *testing.T) {
	res := runCall(t, callSpec{uac: "uac_signalled.xml", uas: "uas_basic.xml", subst: binaryBodies(t)})
	c := waitEnded(t, res.gw, 1)[0]
	if c.Outcome != "completed" {
		t.Errorf("outcome %q", c.Outcome)
	}
	if got := res.gw.digitString(); got != "12345" {
		t.Errorf("digits reported = %q, want 12345 (each press once)", got)
	}
	for _, d := range res.gw.digitsCopy() {
		if d.CallID != c.ID || d.Source != dtmf.SIPInfo {
			t.Errorf("digit %c on call %q from %v, want call %q from SIP", d.Digit, d.CallID, d.Source, c.ID)
		}
	}
}

// TestAgentScenarioSeesForwarded shows that the agent's scenario the
// signalling tests rely on fails when a request it does not expect
// reaches it: the customer's re-INVITE (hold) goes to the agent, as it
// must, and uas_basic.xml, which expects only the BYE after the ACK,
// fails.
func TestAgentScenarioSeesForwarded(t *testing.T) {
	requireSIPp(t)
	agentPort := freePorts(t, 1)
	gw := startGateway(t, agentPort)
	rtp := listenAgentRTP(t)
	uas := startSIPp(t, "agent", "uas_basic.xml", "-p", strconv.Itoa(agentPort), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)), "-key", "rtp_port", strconv.Itoa(rtp.port()))
	time.Sleep(200 * time.Millisecond)
	uac := startSIPp(t, "customer", "uac_hold.xml", "-p", strconv.Itoa(freePorts(t, 1)), "-t", "u1", "-mp", strconv.Itoa(freePorts(t, 4)),
		"-s", "4420700000", "-key", "corr", "ix-control", gw.g.Addr("carrier").String())
	var err error
	select {
	case err = <-uas.done:
	case <-time.After(60 * time.Second):
		t.Fatal("the agent's scenario did not end")
	}
	if err == nil {
		t.Fatalf("the agent's scenario passed though a re-INVITE reached it:\n%s", tail(uas.out.String(), 2000))
	}
	// The customer's scenario is left waiting for its re-INVITE's answer.
	// (Closing the gateway then waits for BYEs nobody answers: 10 s.)
	uac.cmd.Process.Kill()
	<-uac.done
}

// TestInterop runs the calls of real contact-centre networks that the
// gateway used to refuse: late offer (CUCM's default) from either trunk,
// CUCM's hold with a re-INVITE without SDP, a SIP-I INVITE (SDP plus
// ISUP), and a caller behind an SBC chain whose 200 OK is over 1300
// bytes and must come back over UDP. The scenarios check each offer and
// answer is the gateway's; the test that each call completed.
func TestInterop(t *testing.T) {
	tests := []struct {
		name     string
		uac, uas string
		reverse  bool
	}{
		{name: "late offer from the carrier", uac: "uac_late.xml", uas: "uas_late.xml"},
		{name: "late offer from the platform", uac: "uac_late.xml", uas: "uas_late.xml", reverse: true},
		{name: "CUCM re-INVITE without SDP", uac: "uac_reinvite_in.xml", uas: "uas_cucm.xml"},
		{name: "SIP-I INVITE", uac: "uac_sipi.xml", uas: "uas_basic.xml"},
		{name: "200 OK of 1500 bytes and more over UDP", uac: "uac_sbc.xml", uas: "uas_basic.xml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCall(t, callSpec{uac: tt.uac, uas: tt.uas, reverse: tt.reverse, subst: binaryBodies(t)})
			c := waitEnded(t, res.gw, 1)[0]
			if c.Outcome != "completed" || c.Answer.IsZero() {
				t.Errorf("outcome %q, answered %v; want a completed call", c.Outcome, !c.Answer.IsZero())
			}
		})
	}
}

package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/siprec"
	"github.com/tonevault/tonevault/siprec/srs"
)

// srsAnswer is a recording server's answer: both streams recvonly.
func srsAnswer(custPort, agentPort int) string {
	return fmt.Sprintf("v=0\no=srs 1 1 IN IP4 10.9.9.9\ns=-\nc=IN IP4 10.9.9.9\nt=0 0\n"+
		"m=audio %d RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=label:1\na=recvonly\n"+
		"m=audio %d RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\na=label:2\na=recvonly\n", custPort, agentPort)
}

// startRecordingGW is a gateway whose carrier trunk records with srs.
func startRecordingGW(t *testing.T, agent *peer, srs string, rc func(*RecordingConfig)) *testGW {
	t.Helper()
	return startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
		c.Trunks.Carrier.Recording = RecordingConfig{SRS: srs, Timeout: 500 * time.Millisecond}
		if rc != nil {
			rc(&c.Trunks.Carrier.Recording)
		}
	})
}

// establishWith is establish with extra headers in the customer's INVITE.
func establishWith(t *testing.T, tg *testGW, cust, agent *peer, callID, extra string) string {
	t.Helper()
	cust.send(tg.carrier, invite(cust, tg.carrier, callID, extra, customerSDP))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", "v=0\no=a 1 1 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\nm=audio 8000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n")
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	toTag := ok.To().Value()
	cust.send(tg.carrier, fmt.Sprintf("ACK sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-ack-%s\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: %s\nCSeq: 1 ACK\nMax-Forwards: 70\nContent-Length: 0\n\n", tg.carrier, cust.addr(), callID, toTag, callID))
	return toTag
}

func TestRecordingSession(t *testing.T) {
	agent, srs := newPeer(t), newPeer(t)
	tg := startRecordingGW(t, agent, "sip:srs@"+srs.addr(), nil)
	cust := newPeer(t)
	toTag := establishWith(t, tg, cust, agent, "rec-1", "X-Interaction-ID: ix-rec-1\n")

	inv := srs.readRequest(sip.INVITE)
	sess := tg.relay.session(0)
	fork := sess.recording()
	if fork == nil {
		t.Fatal("no recording fork opened")
	}
	if v := headerValue(inv, "Require"); v != "siprec" {
		t.Errorf("Require = %q, want siprec", v)
	}
	if c := inv.Contact(); c == nil || !strings.Contains(c.Value(), ";+sip.src") {
		t.Errorf("Contact %v lacks +sip.src", c)
	}
	if via := inv.Via(); via.Port != int(tg.plat.Port()) {
		t.Errorf("INVITE left from port %d, want the platform trunk's %d", via.Port, tg.plat.Port())
	}
	sdp, meta, err := siprec.ReadBody(headerValue(inv, "Content-Type"), inv.Body())
	if err != nil {
		t.Fatalf("INVITE body: %v\n%s", err, inv.Body())
	}
	if !strings.Contains(string(inv.Body()), "Content-Disposition: recording-session") {
		t.Error("metadata part without Content-Disposition: recording-session")
	}
	streams, err := siprec.ReadSDP(sdp)
	if err != nil || len(streams) != 2 {
		t.Fatalf("offer: %v %+v", err, streams)
	}
	for i, want := range []struct {
		label string
		addr  netip.AddrPort
	}{{siprec.LabelCustomer, fork.cust}, {siprec.LabelAgent, fork.agent}} {
		s := streams[i]
		names := ""
		for _, f := range s.Formats {
			names += f.Name + " "
		}
		if s.Label != want.label || s.Addr != want.addr || s.Direction != "sendonly" || names != "PCMU telephone-event " {
			t.Errorf("offered stream %d: %+v, want label %s from %s, sendonly, PCMU and telephone-event", i, s, want.label, want.addr)
		}
	}
	md, err := siprec.ParseMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := tg.g.Registry().ByCorrelation("ix-rec-1")
	if v, _ := md.CorrelationValue("X-Interaction-ID"); v != "ix-rec-1" {
		t.Errorf("metadata correlation = %q, want ix-rec-1", v)
	}
	if c := md.Sessions[0].Call; c == nil || c.ID != info.ID || len(c.Legs) != 2 || c.Legs[0].CallID != "rec-1" {
		t.Errorf("metadata call data %+v, want id %s and the legs' Call-IDs", c, info.ID)
	}
	if p := md.Participants[0].NameID; p.AOR != "sip:441234567890@example.com" || p.Name != "Jane" {
		t.Errorf("caller participant %+v", p)
	}
	if l := md.StreamOf(md.Participants[0].ID); l != siprec.LabelCustomer {
		t.Errorf("the caller sends stream %q, want the customer's", l)
	}

	srs.respond(tg.plat, inv, 200, "OK", "", srsAnswer(40000, 40002))
	srs.readRequest(sip.ACK)
	started := waitRecords(t, tg, audit.EventRecordingStarted, 1)
	if started[0].CallID != info.ID || started[0].Trunk != "platform" || started[0].Status != 200 {
		t.Errorf("recording.started %+v", started[0])
	}
	remotes, _ := fork.state()
	if len(remotes) != 1 || remotes[0][0].Addr.String() != "10.9.9.9:40000" || remotes[0][1].Addr.String() != "10.9.9.9:40002" ||
		remotes[0][0].PayloadTypes[0].Codec != media.PCMU {
		t.Errorf("fork's remotes %+v", remotes)
	}

	hangUp(t, tg, cust, agent, "rec-1", toTag, 9)
	bye := srs.readRequest(sip.BYE)
	if bye.CallID().Value() != inv.CallID().Value() {
		t.Errorf("BYE in another dialog")
	}
	srs.respond(tg.plat, bye, 200, "OK", "", "")
	ended := waitRecords(t, tg, audit.EventRecordingEnded, 1)
	if ended[0].Reason != audit.ReasonCompleted || ended[0].CallID != info.ID {
		t.Errorf("recording.ended %+v", ended[0])
	}
	if _, closed := fork.state(); !closed {
		t.Error("fork not closed")
	}
	if n := metricValue(tg.metrics.records.WithLabelValues("started")); n != 1 {
		t.Errorf("recordings started = %v", n)
	}
	if n := len(tg.audit.find(audit.EventRecordingFailed)); n != 0 {
		t.Errorf("%d recording.failed records", n)
	}
}

// TestRecordingWithheldCaller: a caller who withheld their identity is
// anonymous in the metadata too.
func TestRecordingWithheldCaller(t *testing.T) {
	agent, srs := newPeer(t), newPeer(t)
	tg := startRecordingGW(t, agent, "sip:srs@"+srs.addr(), nil)
	cust := newPeer(t)
	toTag := establishWith(t, tg, cust, agent, "rec-anon", "Privacy: id\nP-Asserted-Identity: <sip:+441234567890@carrier>\n")
	inv := srs.readRequest(sip.INVITE)
	_, meta, err := siprec.ReadBody(headerValue(inv, "Content-Type"), inv.Body())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(meta), "441234567890") || strings.Contains(string(inv.String()), "441234567890") {
		t.Errorf("the withheld number reached the recorder:\n%s", inv)
	}
	md, err := siprec.ParseMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	if p := md.Participants[0].NameID; p.AOR != siprec.Withheld.AOR {
		t.Errorf("caller participant %+v, want anonymous", p)
	}
	srs.respond(tg.plat, inv, 486, "Busy Here", "", "")
	srs.readRequest(sip.ACK)
	waitRecords(t, tg, audit.EventRecordingFailed, 1)
	hangUp(t, tg, cust, agent, "rec-anon", toTag, 9)
}

// TestRecordingFailures: whatever goes wrong with the recording, the
// call goes on (audited and counted); with required, the call is ended
// on both legs.
func TestRecordingFailures(t *testing.T) {
	cases := []struct {
		name    string
		forkErr error
		srs     func(t *testing.T, tg *testGW, srs *peer)
		reason  audit.Reason
		status  int
		down    bool // nothing listens where the recorder should be
	}{
		{name: "recorder down", down: true, reason: audit.ReasonRecorderUnreachable},
		{name: "refused", reason: audit.ReasonRecorderRejected, status: 488, srs: func(t *testing.T, tg *testGW, srs *peer) {
			inv := srs.readRequest(sip.INVITE)
			srs.respond(tg.plat, inv, 488, "Not Acceptable Here", "", "")
			srs.readRequest(sip.ACK)
		}},
		{name: "no answer", reason: audit.ReasonRecorderTimeout, srs: func(t *testing.T, tg *testGW, srs *peer) {
			srs.readRequest(sip.INVITE)
		}},
		{name: "no usable stream", reason: audit.ReasonRecorderBadAnswer, status: 200, srs: func(t *testing.T, tg *testGW, srs *peer) {
			inv := srs.readRequest(sip.INVITE)
			srs.respond(tg.plat, inv, 200, "OK", "", srsAnswer(0, 0))
			srs.readRequest(sip.ACK)
			bye := srs.readRequest(sip.BYE)
			srs.respond(tg.plat, bye, 200, "OK", "", "")
		}},
		{name: "bad sdp", reason: audit.ReasonRecorderBadAnswer, status: 200, srs: func(t *testing.T, tg *testGW, srs *peer) {
			inv := srs.readRequest(sip.INVITE)
			srs.respond(tg.plat, inv, 200, "OK", "", "v=0\nthis is not sdp\n")
			srs.readRequest(sip.ACK)
			bye := srs.readRequest(sip.BYE)
			srs.respond(tg.plat, bye, 200, "OK", "", "")
		}},
		{name: "recorder hangs up", reason: audit.ReasonRecorderBye, srs: func(t *testing.T, tg *testGW, srs *peer) {
			inv := srs.readRequest(sip.INVITE)
			srs.respond(tg.plat, inv, 200, "OK", "", srsAnswer(40000, 40002))
			srs.readRequest(sip.ACK)
			waitRecords(t, tg, audit.EventRecordingStarted, 1)
			srs.send(tg.plat, fmt.Sprintf("BYE %s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-srsbye\nFrom: %s;tag=agent1\nTo: %s\nCall-ID: %s\nCSeq: 1 BYE\nMax-Forwards: 70\nContent-Length: 0\n\n",
				inv.Contact().Address.String(), srs.addr(), inv.To().Value(), inv.From().Value(), inv.CallID().Value()))
			srs.readResponse(200)
		}},
		{name: "fork", forkErr: errors.New("media: no ports left"), reason: audit.ReasonRecordingForkFailed},
	}
	for _, c := range cases {
		for _, required := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s required=%v", c.name, required), func(t *testing.T) {
				agent, srs := newPeer(t), newPeer(t)
				tg := startRecordingGW(t, agent, "sip:srs@"+srs.addr(), func(r *RecordingConfig) {
					r.Required = required // ProbeInterval 0: taken as up
				})
				tg.relay.recordErr = c.forkErr
				if c.down {
					srs.conn.Close() // ICMP port unreachable
				}
				cust := newPeer(t)
				id := "recfail-" + strings.ReplaceAll(c.name, " ", "-")
				toTag := establishWith(t, tg, cust, agent, id, "")
				if c.srs != nil {
					c.srs(t, tg, srs)
				}
				failed := waitRecords(t, tg, audit.EventRecordingFailed, 1)
				if r := failed[0]; r.Reason != c.reason || r.Status != c.status || r.Outcome != audit.Failure || r.CallID == "" {
					t.Errorf("recording.failed %+v, want reason %s status %d", r, c.reason, c.status)
				}
				if n := metricValue(tg.metrics.records.WithLabelValues(string(c.reason))); n != 1 {
					t.Errorf("tonevault_sip_recordings_total{result=%q} = %v", c.reason, n)
				}
				if rec := tg.relay.session(0).recording(); rec != nil {
					if _, closed := rec.state(); !closed {
						t.Error("the fork of a failed recording is open")
					}
				}
				if !required {
					// The call goes on: nothing reached its legs; it ends
					// when the customer hangs up.
					if n := metricValue(tg.metrics.active); n != 1 {
						t.Errorf("active calls = %v, want 1", n)
					}
					hangUp(t, tg, cust, agent, id, toTag, 9)
					ended := waitRecords(t, tg, audit.EventSIPCallEnded, 1)
					if ended[0].Reason != audit.ReasonCompleted {
						t.Errorf("sip.call_ended %+v", ended[0])
					}
					return
				}
				// Required: BYE on both legs, reason recording_failed.
				for _, p := range []*peer{cust, agent} {
					bye := p.readRequest(sip.BYE)
					to := tg.carrier
					if p == agent {
						to = tg.plat
					}
					p.respond(to, bye, 200, "OK", "", "")
				}
				ended := waitRecords(t, tg, audit.EventSIPCallEnded, 1)
				if ended[0].Reason != audit.ReasonRecordingFailed {
					t.Errorf("sip.call_ended %+v, want reason recording_failed", ended[0])
				}
			})
		}
	}
}

// TestRecordingRequiredRefuses: with required and the recorder down,
// new calls get 503 and an audit record; nothing reaches the platform.
func TestRecordingRequiredRefuses(t *testing.T) {
	agent := newPeer(t)
	down := newPeer(t)
	downAddr := down.addr()
	down.conn.Close() // nothing listens there: ICMP port unreachable
	tg := startRecordingGW(t, agent, "sip:srs@"+downAddr, func(r *RecordingConfig) {
		r.Required, r.ProbeInterval = true, time.Hour
	})
	cust := newPeer(t)
	cust.send(tg.carrier, invite(cust, tg.carrier, "refused-1", "", customerSDP))
	cust.readResponse(503)
	recs := waitRecords(t, tg, audit.EventRecordingFailed, 1)
	if r := recs[0]; r.Reason != audit.ReasonRecordingUnavailable || r.Status != 503 || r.Trunk != "carrier" || r.Method != "INVITE" || r.CallID != "" {
		t.Errorf("recording.failed %+v", r)
	}
	if n := len(tg.audit.find(audit.EventSIPCallStarted)); n != 0 {
		t.Errorf("%d calls started", n)
	}
	if tg.relay.session(0) != nil {
		t.Error("a media session was opened for a refused call")
	}
	if n := metricValue(tg.metrics.recUp.WithLabelValues("carrier")); n != 0 {
		t.Errorf("tonevault_sip_recorder_up = %v, want 0", n)
	}
}

// TestRecordingRequiredProbeUp: with required and a recorder that
// answers OPTIONS, calls go through.
func TestRecordingRequiredProbeUp(t *testing.T) {
	agent, srs := newPeer(t), newPeer(t)
	tg := startRecordingGW(t, agent, "sip:srs@"+srs.addr(), func(r *RecordingConfig) {
		r.Required, r.ProbeInterval = true, time.Hour
	})
	opt := srs.readRequest(sip.OPTIONS)
	srs.respond(tg.plat, opt, 200, "OK", "", "")
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(tg.metrics.recUp.WithLabelValues("carrier")) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cust := newPeer(t)
	toTag := establishWith(t, tg, cust, agent, "probed-1", "")
	inv := srs.readRequest(sip.INVITE)
	srs.respond(tg.plat, inv, 200, "OK", "", srsAnswer(40000, 40002))
	srs.readRequest(sip.ACK)
	waitRecords(t, tg, audit.EventRecordingStarted, 1)
	hangUp(t, tg, cust, agent, "probed-1", toTag, 9)
	bye := srs.readRequest(sip.BYE)
	srs.respond(tg.plat, bye, 200, "OK", "", "")
	waitRecords(t, tg, audit.EventRecordingEnded, 1)
}

func TestRecordingConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		rc   RecordingConfig
		want string // "" valid
	}{
		{"off", RecordingConfig{}, ""},
		{"udp", RecordingConfig{SRS: "sip:srs@10.0.0.9:5060", Required: true}, ""},
		{"tcp name", RecordingConfig{SRS: "sip:srs@rec.example.net;transport=tcp"}, ""},
		{"required alone", RecordingConfig{Required: true}, "sip.trunks.carrier.recording.required"},
		{"not a uri", RecordingConfig{SRS: "srs.example.net"}, "sip.trunks.carrier.recording.srs"},
		{"http", RecordingConfig{SRS: "http://srs.example.net/"}, "sip.trunks.carrier.recording.srs"},
		{"user", RecordingConfig{SRS: "sip:{user}@srs"}, "sip.trunks.carrier.recording.srs"},
		{"sctp", RecordingConfig{SRS: "sip:srs@10.0.0.9;transport=sctp"}, "sip.trunks.carrier.recording.srs"},
		{"tls without tls", RecordingConfig{SRS: "sips:srs@10.0.0.9"}, "sip.trunks.carrier.recording.srs"},
		{"negative timeout", RecordingConfig{SRS: "sip:srs@10.0.0.9", Timeout: -1}, "sip.trunks.carrier.recording.timeout"},
		{"negative probe", RecordingConfig{SRS: "sip:srs@10.0.0.9", ProbeInterval: -1}, "sip.trunks.carrier.recording.probe_interval"},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		cfg.Trunks.Carrier.Recording = c.rc
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want one naming %s", c.name, err, c.want)
		}
	}
	if d := DefaultConfig().Trunks.Carrier.Recording; d.SRS != "" || d.Required || d.Timeout != DefaultRecordingTimeout || d.ProbeInterval != DefaultRecorderProbe {
		t.Errorf("default recording %+v", d)
	}
}

// TestRecordingWithSRS: the gateway's recording session against the
// recording server of siprec/srs (the one behind `tonevault srs`): it
// takes the INVITE, answers both streams and, on the BYE that ends the
// call, writes the recording with the metadata; a call still up when
// the gateway stops gets its BYE too.
func TestRecordingWithSRS(t *testing.T) {
	dir := t.TempDir()
	server, err := srs.Start(srs.Config{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	agent := newPeer(t)
	tg := startRecordingGW(t, agent, server.URI(), nil)
	cust := newPeer(t)
	toTag := establishWith(t, tg, cust, agent, "srs-1", "X-Interaction-ID: ix-srs-1\n")
	waitRecords(t, tg, audit.EventRecordingStarted, 1)
	remotes, _ := tg.relay.session(0).recording().state()
	if len(remotes) != 1 || remotes[0][0].Addr.Port() == 0 || remotes[0][1].Addr.Port() == 0 || remotes[0][0].Addr == remotes[0][1].Addr {
		t.Fatalf("fork's remotes from the server's answer: %+v", remotes)
	}
	hangUp(t, tg, cust, agent, "srs-1", toTag, 9)
	waitRecords(t, tg, audit.EventRecordingEnded, 1)
	deadline := time.Now().Add(5 * time.Second)
	for len(server.Recordings()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	recs := server.Recordings()
	if len(recs) != 1 {
		t.Fatalf("server wrote %d recordings", len(recs))
	}
	meta, err := os.ReadFile(recs[0].Metadata)
	if err != nil {
		t.Fatal(err)
	}
	md, err := siprec.ParseMetadata(meta)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := md.CorrelationValue("X-Interaction-ID"); v != "ix-srs-1" {
		t.Errorf("metadata correlation %q", v)
	}

	// A second call, still up when the gateway stops.
	establishWith(t, tg, cust, agent, "srs-2", "")
	waitRecords(t, tg, audit.EventRecordingStarted, 2)
	go func() { // the legs' BYEs
		for _, p := range []*peer{cust, agent} {
			bye := p.readRequest(sip.BYE)
			to := tg.carrier
			if p == agent {
				to = tg.plat
			}
			p.respond(to, bye, 200, "OK", "", "")
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tg.g.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(server.Recordings()); n != 2 {
		t.Errorf("after the gateway stopped the server has %d recordings, want 2 (the second ended by the gateway's BYE)", n)
	}
	ended := tg.audit.find(audit.EventRecordingEnded)
	if len(ended) != 2 || ended[1].Reason != audit.ReasonShutdown {
		t.Errorf("recording.ended %+v, want the second with reason shutdown", ended)
	}
}

// TestRecordingReoffer: an UPDATE that changes the call's codec gets
// the recorder a re-INVITE with the new one; one that changes nothing
// of it does not.
func TestRecordingReoffer(t *testing.T) {
	agent, srs := newPeer(t), newPeer(t)
	tg := startRecordingGW(t, agent, "sip:srs@"+srs.addr(), nil)
	cust := newPeer(t)
	toTag := establishWith(t, tg, cust, agent, "reoffer-1", "")
	inv := srs.readRequest(sip.INVITE)
	srs.respond(tg.plat, inv, 200, "OK", "", srsAnswer(40000, 40002))
	srs.readRequest(sip.ACK)
	waitRecords(t, tg, audit.EventRecordingStarted, 1)

	update := func(n int, sdp string) {
		sdp = strings.ReplaceAll(strings.TrimLeft(sdp, "\n"), "\n", "\r\n")
		cust.send(tg.carrier, fmt.Sprintf("UPDATE sip:tonevault@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-upd%d\nFrom: \"Jane\" <sip:441234567890@example.com>;tag=cust1\nTo: %s\nCall-ID: reoffer-1\nCSeq: %d UPDATE\nContact: <sip:customer@%s>\nMax-Forwards: 70\nContent-Type: application/sdp\nContent-Length: %d\n\n", tg.carrier, cust.addr(), n, toTag, 4+n, cust.addr(), len(sdp))+sdp)
		au := agent.readRequest(sip.UPDATE)
		agent.respond(tg.plat, au, 200, "OK", "", "v=0\no=a 1 2 IN IP4 10.2.2.2\ns=-\nc=IN IP4 10.2.2.2\nt=0 0\n"+agentMedia(au))
		cust.readResponse(200)
	}
	// The same codecs at another port: nothing for the recorder.
	update(1, strings.Replace(customerSDP, "m=audio 7000", "m=audio 7010", 1))
	// PCMA now.
	update(2, strings.Replace(strings.Replace(customerSDP, "RTP/AVP 0 101", "RTP/AVP 8 101", 1), "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000", 1))
	re := srs.readRequest(sip.INVITE)
	if re.CallID().Value() != inv.CallID().Value() || re.CSeq().SeqNo <= inv.CSeq().SeqNo {
		t.Errorf("re-INVITE %s/%d is not in the recording dialog after %d", re.CallID().Value(), re.CSeq().SeqNo, inv.CSeq().SeqNo)
	}
	streams, err := siprec.ReadSDP(re.Body())
	if err != nil || len(streams) != 2 || streams[0].Formats[0].Name != "PCMA" || streams[1].Formats[0].Name != "PCMA" {
		t.Fatalf("re-offer %v:\n%s", err, re.Body())
	}
	if !strings.Contains(string(re.Body()), "o=tonevault ") || !strings.Contains(string(re.Body()), " 2 IN IP4") {
		t.Errorf("re-offer's o= line is not the next version:\n%s", re.Body())
	}
	srs.respond(tg.plat, re, 200, "OK", "", strings.ReplaceAll(srsAnswer(40010, 40012), "RTP/AVP 0 101", "RTP/AVP 8 101"))
	srs.readRequest(sip.ACK)
	deadline := time.Now().Add(5 * time.Second)
	var remotes [][2]media.Stream
	for len(remotes) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		remotes, _ = tg.relay.session(0).recording().state()
	}
	if len(remotes) != 2 || remotes[1][0].Addr.Port() != 40010 || remotes[1][0].PayloadTypes[0].Codec != media.PCMA {
		t.Errorf("fork's remotes after the re-offer: %+v", remotes)
	}
	hangUp(t, tg, cust, agent, "reoffer-1", toTag, 20)
	bye := srs.readRequest(sip.BYE)
	srs.respond(tg.plat, bye, 200, "OK", "", "")
	waitRecords(t, tg, audit.EventRecordingEnded, 1)
	if n := len(tg.audit.find(audit.EventRecordingFailed)); n != 0 {
		t.Errorf("%d recording.failed records", n)
	}
}

// agentMedia is the agent's answer's m= section to an offer: its first
// audio format.
func agentMedia(offer *sip.Request) string {
	if strings.Contains(string(offer.Body()), "RTP/AVP 8") {
		return "m=audio 8000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\n"
	}
	return "m=audio 8002 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n"
}

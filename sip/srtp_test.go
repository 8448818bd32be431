package sip

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/sdes"
)

// The customer's and the agent's keys in these tests (test values).
var (
	custKey  = base64.StdEncoding.EncodeToString([]byte("customer-key-0123456789abcdefg"))
	agentKey = base64.StdEncoding.EncodeToString([]byte("agent-key-0123456789abcdefghij"))
	keysB64  = []string{custKey, agentKey}
)

// srtpSDP is an SDP of one audio stream with transport proto and the
// given a=crypto values.
func srtpSDP(ip string, port int, proto string, crypto ...string) string {
	s := fmt.Sprintf("v=0\no=x 1 1 IN IP4 %s\ns=-\nc=IN IP4 %s\nt=0 0\nm=audio %d %s 0 101\na=rtpmap:0 PCMU/8000\na=rtpmap:101 telephone-event/8000\n", ip, ip, port, proto)
	for _, c := range crypto {
		s += "a=crypto:" + c + "\n"
	}
	return s
}

// sdpCrypto reads the proto and a=crypto of an SDP body the gateway sent.
func sdpCrypto(t *testing.T, body []byte) (proto string, lines []sdes.Crypto) {
	t.Helper()
	p, err := readSDP(body, RewriteOptions{AcceptSAVP: true, KeepUninspectable: true})
	if err != nil {
		t.Fatalf("gateway sent an SDP that does not parse: %v\n%s", err, body)
	}
	return strings.Join(p.md.MediaName.Protos, "/"), p.crypto
}

// TestSRTPNegotiation runs calls through the gateway for each trunk
// policy and each kind of offer and answer: what the agent is offered,
// what the customer is answered, and which keys the relay gets per leg.
// Each leg's keys are its own: the customer's key never goes to the
// agent, the agent's never to the customer, and the gateway's answer to
// the customer is not the key it offered the agent.
func TestSRTPNegotiation(t *testing.T) {
	teams := "1 AES_CM_128_HMAC_SHA1_80 inline:" + custKey + "|2^31|1:1"
	tests := []struct {
		name              string
		carrier, platform SRTPPolicy
		custProto         string
		custCrypto        []string
		agentAnswers      string // "srtp": the first offered line, "plain": RTP/AVP without crypto
		wantCode          int
		wantAgentProto    string // what the agent is offered
		wantAgentLines    int
		wantCustProto     string
		wantCustSRTP      bool
		wantCustMKI       int
		wantAgentSRTP     bool
	}{
		{name: "Teams offer, both required", carrier: SRTPRequired, platform: SRTPRequired, custProto: "RTP/SAVP", custCrypto: []string{teams},
			agentAnswers: "srtp", wantCode: 200, wantAgentProto: "RTP/SAVP", wantAgentLines: 3, wantCustProto: "RTP/SAVP", wantCustSRTP: true, wantCustMKI: 1, wantAgentSRTP: true},
		{name: "SRTP customer, plain agent", carrier: SRTPRequired, platform: SRTPOff, custProto: "RTP/SAVP", custCrypto: []string{"1 AEAD_AES_128_GCM inline:" + custKey[:38]},
			agentAnswers: "plain", wantCode: 200, wantAgentProto: "RTP/AVP", wantCustProto: "RTP/SAVP", wantCustSRTP: true},
		{name: "plain customer, SRTP agent", carrier: SRTPOptional, platform: SRTPRequired, custProto: "RTP/AVP",
			agentAnswers: "srtp", wantCode: 200, wantAgentProto: "RTP/SAVP", wantAgentLines: 3, wantCustProto: "RTP/AVP", wantAgentSRTP: true},
		{name: "best effort both ways, agent answers plain", carrier: SRTPOptional, platform: SRTPOptional, custProto: "RTP/AVP", custCrypto: []string{"1 AES_CM_128_HMAC_SHA1_32 inline:" + custKey},
			agentAnswers: "plain", wantCode: 200, wantAgentProto: "RTP/AVP", wantAgentLines: 3, wantCustProto: "RTP/AVP", wantCustSRTP: true},
		{name: "second line chosen when the first is not supported", carrier: SRTPRequired, platform: SRTPOff, custProto: "RTP/SAVP",
			custCrypto:   []string{"1 AES_256_CM_HMAC_SHA1_80 inline:" + custKey, "2 AES_CM_128_HMAC_SHA1_80 inline:" + custKey + " UNENCRYPTED_SRTP", "3 AES_CM_128_HMAC_SHA1_32 inline:" + custKey},
			agentAnswers: "plain", wantCode: 200, wantAgentProto: "RTP/AVP", wantCustProto: "RTP/SAVP", wantCustSRTP: true},
		{name: "SRTP offer to a trunk with srtp off", carrier: SRTPOff, platform: SRTPOff, custProto: "RTP/SAVP", custCrypto: []string{teams}, wantCode: 488},
		{name: "plain offer to a trunk with srtp required", carrier: SRTPRequired, platform: SRTPOff, custProto: "RTP/AVP", wantCode: 488},
		{name: "SAVP without a usable line", carrier: SRTPOptional, platform: SRTPOff, custProto: "RTP/SAVP", custCrypto: []string{"1 F8_128_HMAC_SHA1_80 inline:" + custKey}, wantCode: 488},
		{name: "agent answers plain to required", carrier: SRTPOff, platform: SRTPRequired, custProto: "RTP/AVP",
			agentAnswers: "plain", wantCode: 488, wantAgentProto: "RTP/SAVP", wantAgentLines: 3},
		{name: "crypto in a plain offer to srtp off", carrier: SRTPOff, platform: SRTPOff, custProto: "RTP/AVP", custCrypto: []string{teams},
			agentAnswers: "plain", wantCode: 200, wantAgentProto: "RTP/AVP", wantCustProto: "RTP/AVP"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agent, cust := newPeer(t), newPeer(t)
			tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) {
				c.Trunks.Carrier.SRTP, c.Trunks.Platform.SRTP = tt.carrier, tt.platform
			})
			defer checkNoKeyLogged(t, tg, keysB64)
			callID := fmt.Sprintf("srtp-%d", i)
			cust.send(tg.carrier, invite(cust, tg.carrier, callID, "", srtpSDP("10.1.1.1", 7000, tt.custProto, tt.custCrypto...)))
			if tt.wantAgentProto == "" {
				cust.readResponse(tt.wantCode)
				return
			}
			inv := agent.readRequest(sip.INVITE)
			if strings.Contains(string(inv.Body()), custKey) {
				t.Fatal("the customer's key reached the agent")
			}
			proto, offered := sdpCrypto(t, inv.Body())
			if proto != tt.wantAgentProto || len(offered) != tt.wantAgentLines {
				t.Fatalf("agent offered %s with %d a=crypto, want %s with %d:\n%s", proto, len(offered), tt.wantAgentProto, tt.wantAgentLines, inv.Body())
			}
			for _, o := range offered {
				if o.Keys[0].MKILen != 0 {
					t.Errorf("offer line %d has an MKI (Twilio refuses them)", o.Tag)
				}
			}
			answer := srtpSDP("10.2.2.2", 8000, "RTP/AVP")
			if tt.agentAnswers == "srtp" {
				answer = srtpSDP("10.2.2.2", 8000, tt.wantAgentProto, fmt.Sprintf("%d %s inline:%s", offered[0].Tag, offered[0].Suite, agentKey))
			}
			agent.respond(tg.plat, inv, 200, "OK", "", answer)
			if tt.wantCode != 200 {
				agent.readRequest(sip.ACK)
				bye := agent.readRequest(sip.BYE)
				agent.respond(tg.plat, bye, 200, "OK", "", "")
				cust.readResponse(tt.wantCode)
				return
			}
			agent.readRequest(sip.ACK)
			ok := cust.readResponse(200)
			cust.send(tg.carrier, custAck(cust, tg, callID, ok.To().Value(), 1, ""))
			body := string(ok.Body())
			if strings.Contains(body, agentKey) || strings.Contains(body, custKey) {
				t.Fatalf("the customer's answer carries a peer's key:\n%s", body)
			}
			proto, lines := sdpCrypto(t, ok.Body())
			if proto != tt.wantCustProto || (len(lines) == 1) != tt.wantCustSRTP {
				t.Fatalf("customer answered %s with %d a=crypto, want %s, SRTP %v:\n%s", proto, len(lines), tt.wantCustProto, tt.wantCustSRTP, body)
			}
			carrier, platform := tg.relay.session(0).remotes()
			if (carrier.SRTP != nil) != tt.wantCustSRTP || (platform.SRTP != nil) != tt.wantAgentSRTP {
				t.Fatalf("relay SRTP carrier %v platform %v, want %v %v", carrier.SRTP != nil, platform.SRTP != nil, tt.wantCustSRTP, tt.wantAgentSRTP)
			}
			if tt.wantCustSRTP {
				if lines[0].Keys[0].MKILen != tt.wantCustMKI {
					t.Errorf("answer MKI length %d, want %d", lines[0].Keys[0].MKILen, tt.wantCustMKI)
				}
				if !carrier.SRTP.Send.Equal(lines[0].Keys[0]) {
					t.Error("the relay protects toward the customer with another key than the one answered")
				}
				custLine, _ := sdes.Parse(tt.custCrypto[len(tt.custCrypto)-1])
				if carrier.SRTP.Suite != custLine.Suite || !carrier.SRTP.Recv[0].Equal(custLine.Keys[0]) {
					t.Error("the relay does not decrypt the customer with the customer's key")
				}
			}
			if tt.wantAgentSRTP {
				if !platform.SRTP.Send.Equal(offered[0].Keys[0]) {
					t.Error("the relay protects toward the agent with another key than the one offered")
				}
				if carrier.SRTP != nil && (platform.SRTP.Send.Equal(carrier.SRTP.Recv[0]) || platform.SRTP.Send.Equal(carrier.SRTP.Send)) {
					t.Error("the agent leg reuses a key of the customer leg")
				}
			}
			hangUp(t, tg, cust, agent, callID, ok.To().Value(), 2)
			checkNoKeyLogged(t, tg, keysB64, offered, lines)
		})
	}
}

// checkNoKeyLogged fails when any of the keys, or a key of the given
// attributes, appears in what the gateway logged. A planted control
// first shows the check can find one.
func checkNoKeyLogged(t *testing.T, tg *testGW, b64 []string, attrs ...[]sdes.Crypto) {
	t.Helper()
	keys := append([]string(nil), b64...)
	for _, a := range attrs {
		for _, c := range a {
			v := c.Marshal()
			_, k, _ := strings.Cut(v, "inline:")
			k, _, _ = strings.Cut(k, "|")
			keys = append(keys, k)
		}
	}
	dump := func() string {
		var b strings.Builder
		for _, e := range tg.logs.All() {
			b.WriteString(e.Message)
			for k, v := range e.ContextMap() {
				fmt.Fprintf(&b, " %s=%v", k, v)
			}
			b.WriteByte('\n')
		}
		return b.String()
	}
	// The control: a key-shaped marker logged as a field is found.
	marker := base64.StdEncoding.EncodeToString([]byte("control-marker-0123456789abcde"))
	tg.g.log.Info("control", zap.String("planted", marker))
	out := dump()
	if !strings.Contains(out, marker) {
		t.Fatal("control: a planted key is not found in the log")
	}
	for _, k := range keys {
		if len(k) >= 16 && strings.Contains(out, k) {
			t.Errorf("a key reached the log")
		}
	}
}

// TestSRTPKeysStayOnReinvite: a re-INVITE from the customer that keeps
// its key gets the gateway's same key back (the relay keeps the leg's
// SRTP state); one with a new key gets a new one.
func TestSRTPKeysStayOnReinvite(t *testing.T) {
	agent, cust := newPeer(t), newPeer(t)
	tg := startTestGWWith(t, "127.0.0.0/8", agent.addr(), func(c *Config) { c.Trunks.Carrier.SRTP = SRTPRequired })
	offer := srtpSDP("10.1.1.1", 7000, "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+custKey)
	cust.send(tg.carrier, invite(cust, tg.carrier, "srtp-re", "", offer))
	inv := agent.readRequest(sip.INVITE)
	agent.respond(tg.plat, inv, 200, "OK", "", agentSDP)
	agent.readRequest(sip.ACK)
	ok := cust.readResponse(200)
	cust.send(tg.carrier, custAck(cust, tg, "srtp-re", ok.To().Value(), 1, ""))
	_, first := sdpCrypto(t, ok.Body())

	reinvite := func(cseq int, sdp string) []sdes.Crypto {
		t.Helper()
		msg := strings.Replace(invite(cust, tg.carrier, "srtp-re", "", sdp), "CSeq: 1 INVITE", fmt.Sprintf("CSeq: %d INVITE", cseq), 1)
		msg = strings.Replace(msg, "To: <sip:4420700000@"+tg.carrier.String()+">", "To: "+ok.To().Value(), 1)
		msg = strings.Replace(msg, "branch=z9hG4bK-srtp-re", fmt.Sprintf("branch=z9hG4bK-srtp-re-%d", cseq), 1)
		cust.send(tg.carrier, msg)
		re := agent.readRequest(sip.INVITE)
		agent.respond(tg.plat, re, 200, "OK", "", agentSDP)
		agent.readRequest(sip.ACK)
		res := cust.readResponse(200)
		cust.send(tg.carrier, custAck(cust, tg, "srtp-re", ok.To().Value(), cseq, ""))
		_, lines := sdpCrypto(t, res.Body())
		// The gateway takes the next offer once it has seen this ACK
		// (491 before): give it the moment.
		time.Sleep(200 * time.Millisecond)
		return lines
	}
	same := reinvite(2, offer)
	if len(same) != 1 || !same[0].Keys[0].Equal(first[0].Keys[0]) {
		t.Error("the same customer key got a new gateway key")
	}
	other := base64.StdEncoding.EncodeToString([]byte("another-key-0123456789abcdefgh"))
	changed := reinvite(3, srtpSDP("10.1.1.1", 7000, "RTP/SAVP", "1 AES_CM_128_HMAC_SHA1_80 inline:"+other))
	if len(changed) != 1 || changed[0].Keys[0].Equal(first[0].Keys[0]) {
		t.Error("a new customer key kept the gateway's old key")
	}
	hangUp(t, tg, cust, agent, "srtp-re", ok.To().Value(), 4)
}

func TestSRTPPolicyConfig(t *testing.T) {
	c := DefaultConfig()
	c.Trunks.Carrier.SRTP = "sometimes"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "sip.trunks.carrier.srtp") {
		t.Fatalf("Validate = %v", err)
	}
	if !errors.Is(fmt.Errorf("%w", ErrSRTPPolicy), ErrSRTPPolicy) {
		t.Fatal("unreachable")
	}
	var _ = media.SRTP{}
}

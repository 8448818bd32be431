package sipe2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/sip/caller/callertest"
	"github.com/tonevault/tonevault/test/refdetect"
)

// secureTrunks puts the carrier trunk on TLS (and UDP) with a certificate
// of ca, and both trunks' media under SRTP policy srtp.
func secureTrunks(ca *testCA, certFile, keyFile string, carrier, platform sip.SRTPPolicy) func(*sip.Config) {
	return func(c *sip.Config) {
		c.Trunks.Carrier.Transports = []string{"udp", "tls"}
		c.Trunks.Carrier.TLS = sip.TLSConfig{CertFile: certFile, KeyFile: keyFile, CAFile: ca.file, MinVersion: "1.2"}
		c.Trunks.Carrier.SRTP = carrier
		c.Trunks.Platform.SRTP = platform
	}
}

// srtpContext is a decryption context for a suite and a base64 key||salt
// as the SDP carried it, made here and not by the gateway's code.
func srtpContext(t *testing.T, suite, key string) *srtp.Context {
	t.Helper()
	prof, ok := map[string]srtp.ProtectionProfile{
		"AES_CM_128_HMAC_SHA1_80": srtp.ProtectionProfileAes128CmHmacSha1_80,
		"AES_CM_128_HMAC_SHA1_32": srtp.ProtectionProfileAes128CmHmacSha1_32,
		"AEAD_AES_128_GCM":        srtp.ProtectionProfileAeadAes128Gcm,
	}[suite]
	if !ok {
		t.Fatalf("suite %q", suite)
	}
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(key)
	}
	if err != nil || len(raw) < 28 {
		t.Fatalf("key of the SDP does not decode (%d bytes): %v", len(raw), err)
	}
	c, err := srtp.CreateContext(raw[:16], raw[16:], prof)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// decryptAll authenticates and decrypts every captured datagram with
// ctx: one that does not authenticate is plaintext or forged, and fails
// the test. It returns the packets in capture order.
func decryptAll(t *testing.T, ctx *srtp.Context, dgrams [][]byte, what string) []rtp.Packet {
	t.Helper()
	var out []rtp.Packet
	for i, d := range dgrams {
		plain, err := ctx.DecryptRTP(nil, d, nil)
		if err != nil {
			t.Errorf("%s: datagram %d of %d (%d bytes) does not authenticate as SRTP: %v", what, i, len(dgrams), len(d), err)
			continue
		}
		var p rtp.Packet
		if err := p.Unmarshal(plain); err != nil {
			t.Errorf("%s: datagram %d: %v", what, i, err)
			continue
		}
		if bytes.Contains(d, p.Payload) && len(p.Payload) > 8 {
			t.Errorf("%s: datagram %d carries its payload in the clear", what, i)
		}
		out = append(out, p)
	}
	return out
}

// noPlainSIP checks that no captured TCP segment shows SIP in the clear.
func noPlainSIP(t *testing.T, pkts []pkt, tlsPort uint16) {
	t.Helper()
	segs := 0
	for _, p := range pkts {
		if p.udp || (p.src.Port() != tlsPort && p.dst.Port() != tlsPort) || len(p.payload) == 0 {
			continue
		}
		segs++
		if bytes.Contains(p.payload, []byte("SIP/2.0")) || bytes.Contains(p.payload, []byte("a=crypto")) {
			t.Errorf("signalling in the clear on the TLS port")
			return
		}
	}
	if segs == 0 {
		t.Error("the capture holds no TLS signalling: the filter missed it")
	}
}

// TestSecureBaresipCustomer: baresip calls over SIP/TLS with SDES-SRTP
// required (srtp-mand) and types a card; the agent, behind a platform
// trunk with SRTP required too, is callertest's UAS, which decrypts with
// the key the gateway offered it. Its audio is clean for every
// detector, the gateway reports each key press once, and a loopback
// capture shows that every datagram to and from the agent authenticates
// as SRTP, every one of the customer leg has an SRTP tag, and the
// signalling is not readable.
func TestSecureBaresipCustomer(t *testing.T) {
	for _, tt := range []struct {
		name   string
		source dtmf.Source
	}{{"RFC 4733 key presses", dtmf.RFC4733}, {"in-band tones from the microphone", dtmf.InBand}} {
		t.Run(tt.name, func(t *testing.T) {
			requireBaresip(t)
			ca := newTestCA(t)
			gwCert, gwKey, _ := ca.issue(t, "gateway")
			_, _, bsBoth := ca.issue(t, "customer")
			uas := callertest.NewUAS(t, callertest.UASOptions{SRTP: true})
			// The relay's ports, known, so that the capture's customer leg
			// is the gateway's and baresip's packets, not another
			// process's on loopback.
			gwBase := freePorts(t, 8)
			gw := startGatewayMod(t, uasPort(t, uas), "", false, secureTrunks(ca, gwCert, gwKey, sip.SRTPRequired, sip.SRTPRequired), gwBase)
			tlsAddr := gw.g.AddrTLS("carrier")

			mic, tones := voice(baresipMic), time.Duration(0)
			if tt.source == dtmf.InBand {
				mic, tones = toneMic(baresipDigits)
				if got := refdetect.Digits(refdetect.Aggressive(mic)); got != baresipDigits {
					t.Fatalf("aggressive detector finds %q in the microphone input, want %q", got, baresipDigits)
				}
			}
			rtpBase := freePorts(t, 8)
			agentRTP := uas.RTPAddr().Port()
			cap := startCapture(t, fmt.Sprintf("udp port %d or udp portrange %d-%d or tcp port %d", agentRTP, rtpBase, rtpBase+7, tlsAddr.Port()))
			b := startBaresipWith(t, mic, baresipOpts{
				config:    fmt.Sprintf("sip_certificate\t%s\nsip_cafile\t%s\nmodule\t\t\tsrtp.so\n", bsBoth, ca.file),
				account:   ";mediaenc=srtp-mand",
				transport: "tls",
				rtpBase:   rtpBase,
			})
			b.command(t, fmt.Sprintf("/dial sip:pay@%s;transport=tls\n", tlsAddr))
			b.waitFor(t, "Call established")
			if !strings.Contains(b.output(), "SRTP is Enabled") {
				t.Fatal("baresip did not turn SRTP on")
			}
			time.Sleep(300 * time.Millisecond)
			if tt.source == dtmf.RFC4733 {
				for i, k := range baresipDigits {
					b.command(t, string(k))
					b.waitCount(t, "send DTMF digit end", i+1)
					time.Sleep(100 * time.Millisecond)
				}
			} else {
				time.Sleep(tones)
			}
			time.Sleep(300 * time.Millisecond)
			b.command(t, "b")
			b.waitFor(t, "terminated")
			select {
			case <-uas.ByeReceived():
			case <-time.After(10 * time.Second):
				t.Error("the agent never got a BYE")
			}
			b.quit(t)
			pkts := cap.stop(t)

			c := waitEnded(t, gw, 1)[0]
			checkBaresipCall(t, gw, c)
			checkDigits(t, gw, c, tt.source)
			if n := uas.SRTPFailures(); n != 0 {
				t.Errorf("%d packets to the agent did not authenticate", n)
			}
			checkAgentClean(t, uas.Packets())

			// The capture: the agent leg, both ways.
			suite, key := uas.SRTPKey()
			var toAgent [][]byte
			fromAgent := 0
			carrierLeg := 0
			for _, p := range pkts {
				switch {
				case !p.udp:
				case p.dst.Port() == agentRTP:
					toAgent = append(toAgent, p.payload)
				case p.src.Port() == agentRTP:
					fromAgent++
				case inRange(p.src.Port(), rtpBase) && inRange(p.dst.Port(), gwBase) || inRange(p.src.Port(), gwBase) && inRange(p.dst.Port(), rtpBase):
					if len(p.payload) < 12 || p.payload[1]&0x7f >= 72 && p.payload[1]&0x7f <= 76 {
						continue // RTCP
					}
					carrierLeg++
					// SRTP adds a 10-byte tag (80-bit suites) or 4 (32-bit)
					// or 16 (GCM) to a 160-byte PCMU payload or a 4-byte
					// event: a plain packet is 172 or 16 bytes.
					if n := len(p.payload); n == 172 || n == 16 {
						t.Errorf("customer leg datagram of %d bytes: the size of plain RTP", n)
					}
				}
			}
			got := decryptAll(t, srtpContext(t, suite, key), toAgent, "gateway to agent")
			t.Logf("capture: %d SRTP datagrams to the agent (all authenticate: %v), %d from it, %d on the customer leg", len(toAgent), len(got) == len(toAgent), fromAgent, carrierLeg)
			if len(toAgent) < 50 || carrierLeg < 50 || fromAgent == 0 {
				t.Errorf("the capture holds %d datagrams to the agent, %d from it, %d on the customer leg: too few to prove anything", len(toAgent), fromAgent, carrierLeg)
			}
			noPlainSIP(t, pkts, tlsAddr.Port())
		})
	}
}

func inRange(port uint16, base int) bool { return int(port) >= base && int(port) < base+8 }

var (
	cryptoLine = regexp.MustCompile(`(?m)^a=crypto:(\d+) (\S+) inline:([A-Za-z0-9+/=]+)`)
	audioPort  = regexp.MustCompile(`(?m)^m=audio (\d+) `)
	inviteCSeq = regexp.MustCompile(`(?mi)^CSeq: *\d+ INVITE\r?$`)
)

// TestSecureBaresipAgent: baresip is the agent, answering with SRTP
// required (srtp-mand) behind a platform trunk that requires SRTP; the
// customer is tonevault's caller over TLS with SRTP, typing in-band and
// as RFC 4733. The test finds the key the gateway offered the agent in
// a loopback capture (the INVITE and baresip's answer, over UDP),
// decrypts every datagram the gateway sent the agent with it, and runs
// the detectors over the audio: no digit; and every one of those
// datagrams authenticated, so none was plain RTP.
func TestSecureBaresipAgent(t *testing.T) {
	for _, tt := range []struct {
		name string
		mode caller.Mode
		src  dtmf.Source
	}{{"RFC 4733", caller.RFC4733, dtmf.RFC4733}, {"in-band", caller.InBand, dtmf.InBand}} {
		t.Run(tt.name, func(t *testing.T) {
			requireBaresip(t)
			ca := newTestCA(t)
			gwCert, gwKey, _ := ca.issue(t, "gateway")
			sipPort, rtpBase := freePorts(t, 2), freePorts(t, 8)
			gw := startGatewayMod(t, sipPort, "", false, secureTrunks(ca, gwCert, gwKey, sip.SRTPRequired, sip.SRTPRequired))
			tlsAddr := gw.g.AddrTLS("carrier")
			// SIP over TCP too: an INVITE over 1300 bytes (three a=crypto
			// lines and the gateway's own headers) goes over TCP to a
			// peer that takes it (RFC 3261 18.1.1).
			cap := startCapture(t, fmt.Sprintf("port %d or udp portrange %d-%d", sipPort, rtpBase, rtpBase+7))
			b := startBaresipWith(t, voice(baresipMic), baresipOpts{
				config:  "module\t\t\tsrtp.so\n",
				account: ";mediaenc=srtp-mand;answermode=auto",
				rtpBase: rtpBase, sipPort: sipPort, user: "agent",
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var progress strings.Builder
			call, err := caller.Dial(ctx, caller.Options{
				Target: fmt.Sprintf("sip:pay@%s;transport=tls", tlsAddr), SRTP: true,
				TLS: &tls.Config{RootCAs: ca.pool()}, Progress: &progress, Timing: caller.Timing{Seed: 11},
			})
			if err != nil {
				t.Fatalf("Dial: %v\n%s", err, progress.String())
			}
			b.waitFor(t, "SRTP is Enabled")
			time.Sleep(300 * time.Millisecond)
			digits := []byte(baresipDigits)
			if err := call.Type(ctx, digits, tt.mode); err != nil {
				t.Fatalf("Type: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
			if err := call.Hangup(ctx); err != nil {
				t.Errorf("Hangup: %v", err)
			}
			b.waitFor(t, "terminated")
			b.quit(t)
			pkts := cap.stop(t)

			c := waitEnded(t, gw, 1)[0]
			if c.Outcome != "completed" {
				t.Errorf("outcome %q", c.Outcome)
			}
			checkDigits(t, gw, c, tt.src)

			// The gateway's offer to the agent and the agent's answer.
			var offer, answer string
			for _, p := range pkts {
				s := string(p.payload)
				switch {
				case p.dst.Port() == uint16(sipPort) && strings.HasPrefix(s, "INVITE ") && offer == "":
					offer = s
				case p.src.Port() == uint16(sipPort) && strings.HasPrefix(s, "SIP/2.0 200") && inviteCSeq.MatchString(s) && answer == "":
					answer = s
				}
			}
			offered := map[string][2]string{}
			for _, m := range cryptoLine.FindAllStringSubmatch(offer, -1) {
				offered[m[1]] = [2]string{m[2], m[3]}
			}
			chosen := cryptoLine.FindStringSubmatch(answer)
			if len(offered) == 0 || chosen == nil || !strings.Contains(offer, "RTP/SAVP") {
				t.Fatalf("no SRTP offer and answer in the capture:\n%s\n---\n%s", offer, answer)
			}
			gk, ok := offered[chosen[1]]
			if !ok || gk[0] != chosen[2] {
				t.Fatalf("the agent answered tag %s %s, not one offered", chosen[1], chosen[2])
			}
			agentRTP := audioPort.FindStringSubmatch(answer)
			if agentRTP == nil {
				t.Fatal("no m=audio in the agent's answer")
			}
			var toAgent [][]byte
			for _, p := range pkts {
				if p.udp && p.dst.Port() == parsePort(t, agentRTP[1]) && len(p.payload) >= 12 && (p.payload[1]&0x7f < 72 || p.payload[1]&0x7f > 76) {
					toAgent = append(toAgent, p.payload)
				}
			}
			got := decryptAll(t, srtpContext(t, gk[0], gk[1]), toAgent, "gateway to agent")
			t.Logf("capture: %d datagrams to the agent, all SRTP with the gateway's key (%s): %v", len(toAgent), gk[0], len(got) == len(toAgent))
			if len(toAgent) < 50 {
				t.Fatalf("%d datagrams to the agent: too few to prove anything", len(toAgent))
			}
			// The caller sends no audio during an event and its End three
			// times: each End's replacement keeps the first End's
			// timestamp (media/doc.go), two repeats per press.
			checkAgentCleanRepeats(t, got, 2*len(baresipDigits))
		})
	}
}

func parsePort(t *testing.T, s string) uint16 {
	t.Helper()
	ap, err := netip.ParseAddrPort("127.0.0.1:" + s)
	if err != nil {
		t.Fatal(err)
	}
	return ap.Port()
}

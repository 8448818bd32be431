package sipe2e

import (
	"encoding/binary"
	"os"
	"testing"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/test/refdetect"
)

// TestInfoDigits: SIP INFO key presses from the customer are answered 200
// by the gateway (the customer's scenario checks), never reach the agent
// (the agent's scenario fails on any INFO) and are reported once each.
func TestInfoDigits(t *testing.T) {
	res := runCall(t, callSpec{uac: "uac_info.xml", uas: "uas_basic.xml"})
	waitEnded(t, res.gw, 1)
	if got := res.gw.digitString(); got != "42#" {
		t.Errorf("digits reported = %q, want %q (each once)", got, "42#")
	}
	c := waitEnded(t, res.gw, 1)[0]
	for _, d := range res.gw.digitsCopy() {
		if d.CallID != c.ID {
			t.Errorf("digit %c on call %q, want %q", d.Digit, d.CallID, c.ID)
		}
		if d.Source != dtmf.SIPInfo {
			t.Errorf("digit %c source %v, want SIP INFO", d.Digit, d.Source)
		}
	}
}

// TestRFC2833Pcap plays SIPp's RFC 2833 capture of key 1 from the customer
// and checks that the gateway reports it once and that nothing the agent
// receives carries it: no telephone-event packet, and no tone in the audio
// for our detector or the aggressive reference detector.
func TestRFC2833Pcap(t *testing.T) {
	const pcap = "/usr/share/sip-tester/dtmf_2833_1.pcap"
	requireSIPp(t)
	if _, err := os.Stat(pcap); err != nil {
		t.Skipf("skipping: %v (Debian package sip-tester)", err)
	}
	res := runCall(t, callSpec{uac: "uac_rfc2833.xml", uas: "uas_basic.xml", subst: map[string]string{"PCAP": pcap}})
	waitEnded(t, res.gw, 1)
	if got := res.gw.digitString(); got != "1" {
		t.Errorf("digits reported = %q, want %q", got, "1")
	}
	var (
		pcm    []int16
		events int
	)
	for _, p := range res.rtp.packets() {
		if len(p) < 12 || p[0]>>6 != 2 {
			continue
		}
		pt := p[1] & 0x7f
		cc := int(p[0] & 0x0f)
		hdr := 12 + 4*cc
		if p[0]&0x10 != 0 && len(p) >= hdr+4 {
			hdr += 4 + 4*int(binary.BigEndian.Uint16(p[hdr+2:]))
		}
		if hdr > len(p) {
			continue
		}
		payload := p[hdr:]
		switch pt {
		case 101:
			events++
		case 0:
			buf := make([]int16, len(payload))
			dtmf.DecodeG711(buf, payload, dtmf.PCMU)
			pcm = append(pcm, buf...)
		}
	}
	t.Logf("agent received %d RTP packets, %d ms of PCMU, %d telephone-event packets", len(res.rtp.packets()), len(pcm)/8, events)
	if events != 0 {
		t.Errorf("%d telephone-event packets reached the agent", events)
	}
	det := dtmf.NewDetector(dtmf.DetectorConfig{})
	evs := det.Flush(det.Process(pcm, nil))
	if len(evs) != 0 {
		t.Errorf("dtmf detector found %v in the agent's audio", evs)
	}
	if hits := refdetect.Aggressive(pcm); len(hits) != 0 {
		t.Errorf("aggressive reference detector found %s in the agent's audio", refdetect.Digits(hits))
	}
}

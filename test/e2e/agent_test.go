package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/pion/rtp"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/sip/caller/callertest"
	"github.com/tonevault/tonevault/test/refdetect"
)

// agentAudio decodes what the agent received: PCMU and PCMA packets in
// sequence order to 8 kHz linear PCM. It returns the packets of any
// other payload type (telephone-events would be among them) apart.
func agentAudio(pkts []rtp.Packet) (pcm []int16, audio int, other []rtp.Packet) {
	pkts = slices.Clone(pkts)
	slices.SortStableFunc(pkts, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
	for _, p := range pkts {
		var codec dtmf.Codec
		switch p.PayloadType {
		case 0:
			codec = dtmf.PCMU
		case 8:
			codec = dtmf.PCMA
		default:
			other = append(other, p)
			continue
		}
		buf := make([]int16, len(p.Payload))
		dtmf.DecodeG711(buf, p.Payload, codec)
		pcm = append(pcm, buf...)
		audio++
	}
	return pcm, audio, other
}

// ourDigits runs package dtmf's detector (the gateway's own, at its
// default Q.24 profile) over pcm.
func ourDigits(pcm []int16) string {
	d := dtmf.NewDetector(dtmf.DetectorConfig{})
	var s []byte
	for _, e := range d.Flush(d.Process(pcm, nil)) {
		s = append(s, byte(e.Digit))
	}
	return string(s)
}

// detector is one DTMF detector run over the agent's audio.
type detector struct {
	name string
	run  func([]int16) (string, error)
}

var (
	ownDetectors = []detector{
		{"tonevault dtmf", func(p []int16) (string, error) { return ourDigits(p), nil }},
		{"aggressive", func(p []int16) (string, error) { return refdetect.Digits(refdetect.Aggressive(p)), nil }},
	}
	refDetectors = []detector{
		{"spandsp", func(p []int16) (string, error) { h, err := refdetect.SpanDSP(p); return refdetect.Digits(h), err }},
		{"multimon-ng", func(p []int16) (string, error) { h, err := refdetect.Multimon(p); return refdetect.Digits(h), err }},
	}
)

// agentDigits checks that no telephone-event packet and no SIP INFO digit
// reached the agent, decodes the agent leg's audio and calls check with how many digits
// each detector found there. Each detector is first shown to find a '5'
// planted in a copy of that same audio, so a silent or broken decode
// cannot pass. The digits themselves are never printed: they would be
// card data. SpanDSP and multimon-ng run in a subtest that skips (or
// fails with TONEVAULT_REQUIRE_TOOLS=1) when they are not installed.
func agentDigits(t *testing.T, agent *callertest.UAS, check func(t *testing.T, name string, n int)) {
	t.Helper()
	pcm, audio, other := agentAudio(agent.Packets())
	// A few seconds of typing at 50 packets a second: far more than this
	// (a second's worth: fewer when a loaded machine starts the audio late).
	if audio < 50 {
		t.Fatalf("the agent got only %d audio packets: the call carried no media to check", audio)
	}
	for _, p := range other {
		t.Errorf("the agent got an RTP packet of payload type %d (%d bytes): only PCMU/PCMA may reach it", p.PayloadType, len(p.Payload))
	}
	if ev := agent.EventDigits(t); len(ev) != 0 {
		t.Errorf("the agent got %d telephone-event digits", len(ev))
	}
	if info := agent.InfoDigits(t, 0, 60000); len(info) != 0 {
		t.Errorf("the agent got %d digits in SIP INFO", len(info))
	}
	t.Logf("agent leg: %d audio packets (%.1f s), %d other packets", audio, float64(len(pcm))/8000, len(other))
	digitsIn(t, pcm, check)
}

// digitsIn runs every detector over pcm (8 kHz) and calls check with
// how many digits each found, after showing that each finds a '5'
// planted in a copy of the same audio.
func digitsIn(t *testing.T, pcm []int16, check func(t *testing.T, name string, n int)) {
	t.Helper()
	planted := slices.Clone(pcm)
	at := len(planted) / 2
	clear(planted[at : at+1600]) // 200 ms of quiet around the tone, as between presses
	dtmf.AddTone(planted[at+400:at+1200], 8000, 0, '5', -10, -8)

	run := func(t *testing.T, d detector) {
		got, err := d.run(pcm)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		ctl, err := d.run(planted)
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		// The quiet cut may also remove a press, so compare the 5s.
		if strings.Count(ctl, "5") != strings.Count(got, "5")+1 {
			t.Errorf("%s control: the '5' planted in the agent audio was not found (%d digits, %d before): this detector proves nothing here", d.name, len(ctl), len(got))
		}
		check(t, d.name, len(got))
	}
	for _, d := range ownDetectors {
		run(t, d)
	}
	t.Run("reference detectors", func(t *testing.T) {
		refdetect.Require(t, refdetect.ToolSpanDSP, refdetect.ToolMultimon, refdetect.ToolSox)
		for _, d := range refDetectors {
			run(t, d)
		}
	})
}

// assertAgentHeardNoDigits proves DESIGN.md invariants 1 and 2 on the
// agent leg of a real call: no telephone-event packet, no SIP INFO digit,
// and zero digits in
// its audio by our detector, the aggressive reference detector and, when
// installed, SpanDSP and multimon-ng.
func assertAgentHeardNoDigits(t *testing.T, agent *callertest.UAS) {
	t.Helper()
	agentDigits(t, agent, func(t *testing.T, name string, n int) {
		if n != 0 {
			t.Errorf("%s found %d digits on the agent leg", name, n)
		}
	})
}

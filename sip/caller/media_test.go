package caller

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// These tests drive the media clock by hand (tick), with no socket and
// no timer: what the sender would put on the wire, packet by packet.

func offline(codec dtmf.Codec, dir string) *media {
	pt := uint8(ptPCMU)
	if codec == dtmf.PCMA {
		pt = ptPCMA
	}
	st := stream{addr: netip.MustParseAddrPort("127.0.0.1:9"), pt: pt, codec: codec, eventPT: ptEvent, dir: dir}
	return newMedia(nil, st, nil, 5, DefaultToneLow, DefaultToneHigh)
}

// run types digits and ticks until the job is done plus a few frames,
// returning what was sent.
func run(t *testing.T, m *media, mode Mode, digits string, tm Timing) []rtp.Packet {
	t.Helper()
	p, err := plan([]byte(digits), tm, newRand(tm.Seed))
	if err != nil {
		t.Fatal(err)
	}
	j, err := m.schedule(mode, p)
	if err != nil {
		t.Fatal(err)
	}
	var out []rtp.Packet
	tail := 10
	for i := 0; i < 100000 && tail > 0; i++ {
		b, _ := m.tick()
		m.release()
		if b != nil {
			var pkt rtp.Packet
			if err := pkt.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			out = append(out, pkt)
		}
		select {
		case <-j.done:
			tail--
		default:
		}
	}
	if tail > 0 {
		t.Fatal("job never finished")
	}
	return out
}

func decode(pkts []rtp.Packet) []int16 {
	var pcm []int16
	for _, p := range pkts {
		codec := dtmf.PCMU
		switch p.PayloadType {
		case ptPCMA:
			codec = dtmf.PCMA
		case ptPCMU:
		default:
			continue
		}
		buf := make([]int16, len(p.Payload))
		dtmf.DecodeG711(buf, p.Payload, codec)
		pcm = append(pcm, buf...)
	}
	return pcm
}

func assemble(t *testing.T, pkts []rtp.Packet, twice bool) []byte {
	t.Helper()
	var a dtmf.EventAssembler
	var evs []dtmf.Event
	for _, p := range pkts {
		if p.PayloadType != ptEvent {
			continue
		}
		for range map[bool]int{false: 1, true: 2}[twice] {
			var err error
			if evs, err = a.Push(p.SequenceNumber, p.Timestamp, p.Marker, p.Payload, evs); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out []byte
	for _, e := range a.Flush(evs) {
		out = append(out, byte(e.Digit))
	}
	return out
}

func TestTickInBand(t *testing.T) {
	const digits = "0123456789*#ABCD"
	for _, codec := range []dtmf.Codec{dtmf.PCMU, dtmf.PCMA} {
		pkts := run(t, offline(codec, "sendrecv"), InBand, digits, Timing{Seed: 11})
		if got := callertest.Detect(decode(pkts)); string(got) != digits {
			t.Errorf("codec %d: detected %q, want %q", codec, got, digits)
		}
		for _, p := range pkts {
			if p.PayloadType == ptEvent {
				t.Fatalf("codec %d: telephone-event in inband mode", codec)
			}
		}
	}
}

func TestTickRFC4733(t *testing.T) {
	const digits = "4111111111111111#"
	tm := Timing{Seed: 12}
	pkts := run(t, offline(dtmf.PCMU, "sendrecv"), RFC4733, digits, tm)
	for _, twice := range []bool{false, true} {
		if got := assemble(t, pkts, twice); string(got) != digits {
			t.Errorf("twice=%v: assembled %d digits, equal %v", twice, len(got), string(got) == digits)
		}
	}
	if got := callertest.Detect(decode(pkts)); len(got) != 0 {
		t.Errorf("%d digits in the audio of rfc4733 mode", len(got))
	}
	checkStream(t, pkts)
	// Each event lasts its press rounded up to whole packets.
	p, _ := plan([]byte(digits), tm, newRand(tm.Seed))
	var a dtmf.EventAssembler
	var evs []dtmf.Event
	for _, pk := range pkts {
		if pk.PayloadType == ptEvent {
			evs, _ = a.Push(pk.SequenceNumber, pk.Timestamp, pk.Marker, pk.Payload, evs)
		}
	}
	for i, e := range evs {
		want := (p[i].end - p[i].start + frame - 1) / frame * frame
		if e.Duration() != want {
			t.Errorf("event %d: %d samples, want %d", i, e.Duration(), want)
		}
	}
}

// TestTickHold: on hold nothing is sent, and typing still ends.
func TestTickHold(t *testing.T) {
	for _, mode := range []Mode{InBand, RFC4733} {
		if pkts := run(t, offline(dtmf.PCMU, "sendonly"), mode, "12", Timing{Seed: 1}); len(pkts) != 0 {
			t.Errorf("%v: %d packets sent on hold", mode, len(pkts))
		}
	}
}

// TestTickAbort: an aborted event still ends with three End packets,
// and the next presses are not sent.
func TestTickAbort(t *testing.T) {
	m := offline(dtmf.PCMU, "sendrecv")
	p, _ := plan([]byte("123"), Timing{Press: time.Second, Gap: 20 * time.Millisecond}, newRand(1))
	j, _ := m.schedule(RFC4733, p)
	var evs []rtp.Packet
	for i := 0; i < 5; i++ {
		b, _ := m.tick()
		var pk rtp.Packet
		_ = pk.Unmarshal(b)
		if pk.PayloadType == ptEvent {
			evs = append(evs, pk)
		}
	}
	m.abort(j)
	for i := 0; i < 10; i++ {
		b, _ := m.tick()
		m.release()
		var pk rtp.Packet
		_ = pk.Unmarshal(b)
		if pk.PayloadType == ptEvent {
			evs = append(evs, pk)
		}
	}
	select {
	case <-j.done:
	default:
		t.Fatal("aborted job not done")
	}
	ends := 0
	for _, e := range evs {
		if e.Timestamp != evs[0].Timestamp {
			t.Fatal("a second press was sent after abort")
		}
		if e.Payload[1]&0x80 != 0 {
			ends++
		}
	}
	if ends != 3 {
		t.Errorf("%d End packets after abort, want 3", ends)
	}
}

// BenchmarkTick measures one 20 ms packet of comfort noise with an in-band
// tone mixed in, the sender's most expensive frame.
func BenchmarkTick(b *testing.B) {
	m := offline(dtmf.PCMU, "sendrecv")
	m.job = &job{mode: InBand, presses: []press{{digit: '5', start: 0, end: 1 << 62}}, done: make(chan struct{})}
	b.ReportAllocs()
	for b.Loop() {
		m.tick()
	}
}

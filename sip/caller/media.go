package caller

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media/sdes"
)

// frame is one packet of audio: 20 ms at 8 kHz, what phones send.
const frame = 160

// eventVolume is the volume field of our telephone-events: -7 dBm0,
// about the level of the in-band tones we would otherwise send.
const eventVolume = 7

// maxReceived bounds the audio kept from the far end: ten minutes.
const maxReceived = 10 * 60 * dtmf.SampleRate

// noisePeak is the comfort noise's peak: about -60 dBm0, a quiet line
// that still keeps every packet non-silent.
const noisePeak = 24

// job is one Type call being sent by the media loop.
type job struct {
	mode    Mode
	presses []press
	base    int64 // sample position of the plan's zero
	next    int   // first press not yet fully sent
	ev      *event
	cancel  bool
	hungUp  bool // ended by the call's end, not sent in full
	done    chan struct{}
}

// event is the telephone-event being sent: n packets of updates (the
// last with the E bit), then two more End packets, all on one timestamp.
type event struct {
	code    uint8
	ts      uint32
	n, sent int
}

// media is the call's RTP: one socket, a 20 ms clock that sends audio
// and key presses, and a reader that keeps what the far end sends.
type media struct {
	conn *net.UDPConn

	mu       sync.Mutex
	remote   stream
	send     bool // the far end wants our audio (not on hold)
	pos      int64
	seq      uint16
	ts0      uint32
	ssrc     uint32
	loop     []int16 // background audio, looped; nil for comfort noise
	noise    *rand.Rand
	toneLow  float64
	toneHigh float64
	job      *job
	finished []*job // done, released once their last packet is out
	pcm      [frame]int16
	sent     int
	// SRTP, when the call has it: enc protects what we send with our
	// key, dec authenticates what we get with the far end's. Under mu.
	srtp     *sdes.Crypto // the far end's chosen attribute, for re-INVITEs
	ourKey   sdes.Key
	enc, dec *srtp.Context
	authFail int

	rmu      sync.Mutex
	recv     []int16
	received int // packets
	events   int // telephone-event packets received
	dropped  int // packets that did not parse or were not audio we know

	stop chan struct{}
	wg   sync.WaitGroup
}

func newMedia(conn *net.UDPConn, remote stream, loop []int16, seed uint64, toneLow, toneHigh float64) *media {
	return &media{
		conn:     conn,
		remote:   remote,
		send:     remote.canSend(),
		seq:      uint16(rand.Uint32()),
		ts0:      rand.Uint32(),
		ssrc:     rand.Uint32(),
		loop:     loop,
		noise:    newRand(seed + 1),
		toneLow:  toneLow,
		toneHigh: toneHigh,
		stop:     make(chan struct{}),
	}
}

// start runs the sender and the receiver until close.
func (m *media) start() {
	m.wg.Add(2)
	go m.sendLoop()
	go m.recvLoop()
}

// close stops both loops and ends a job still running.
func (m *media) close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	m.conn.Close()
	m.wg.Wait()
	m.mu.Lock()
	if m.job != nil {
		m.job.hungUp = true
		m.finish(m.job)
	}
	m.mu.Unlock()
	m.release()
}

func (m *media) sendLoop() {
	defer m.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		if pkt, to := m.tick(); pkt != nil {
			// A send error (ICMP unreachable on loopback) is not fatal:
			// the far end may open its port later, as phones tolerate.
			_, _ = m.conn.WriteToUDPAddrPort(pkt, to)
		}
		m.release()
	}
}

// tick makes the packet for the next 20 ms and moves the clock on. It
// returns nil when nothing is to be sent (on hold), the clock and any key
// presses going on regardless, as on a real phone.
func (m *media) tick() ([]byte, netip.AddrPort) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := m.pos
	m.pos += frame
	j := m.job
	if j != nil && j.mode == RFC4733 {
		if pkt := m.eventPacket(j, pos); pkt != nil {
			return m.emit(pkt)
		}
	}
	pcm := m.pcm[:]
	m.background(pcm, pos)
	if j != nil && j.mode == InBand {
		m.mixTones(j, pos, pcm)
	}
	payload := make([]byte, 0, frame) // small, and the packet owns it only until sent
	for _, v := range pcm {
		if m.remote.codec == dtmf.PCMA {
			payload = append(payload, g711.EncodeAlawFrame(v))
		} else {
			payload = append(payload, g711.EncodeUlawFrame(v))
		}
	}
	return m.emit(m.packet(m.remote.pt, false, m.ts0+uint32(pos), payload))
}

// emit counts a packet as sent when the far end wants it, protected
// with our key on an SRTP call.
func (m *media) emit(pkt []byte) ([]byte, netip.AddrPort) {
	if !m.send || pkt == nil {
		return nil, netip.AddrPort{}
	}
	if m.enc != nil {
		var err error
		if pkt, err = m.enc.EncryptRTP(nil, pkt, nil); err != nil {
			return nil, netip.AddrPort{}
		}
	}
	m.seq++
	m.sent++
	return pkt, m.remote.addr
}

func (m *media) packet(pt uint8, marker bool, ts uint32, payload []byte) []byte {
	p := rtp.Packet{
		Header: rtp.Header{
			Version: 2, Marker: marker, PayloadType: pt,
			SequenceNumber: m.seq, Timestamp: ts, SSRC: m.ssrc,
		},
		Payload: payload,
	}
	b, err := p.Marshal()
	if err != nil { // cannot happen with a plain header; send nothing
		return nil
	}
	return b
}

// background fills pcm with the quiet line or the looped audio file.
func (m *media) background(pcm []int16, pos int64) {
	if len(m.loop) == 0 {
		for i := range pcm {
			pcm[i] = int16(m.noise.IntN(2*noisePeak+1) - noisePeak)
		}
		return
	}
	for i := range pcm {
		pcm[i] = m.loop[(pos+int64(i))%int64(len(m.loop))]
	}
}

// mixTones adds the tones of the presses sounding in [pos, pos+frame).
func (m *media) mixTones(j *job, pos int64, pcm []int16) {
	end := pos + frame
	for i := j.next; i < len(j.presses) && !j.cancel; i++ {
		p := j.presses[i]
		s, e := j.base+p.start, j.base+p.end
		if s >= end {
			break
		}
		if e <= pos {
			j.next = i + 1
			continue
		}
		a, b := max(s, pos), min(e, end)
		dtmf.AddTone(pcm[a-pos:b-pos], dtmf.SampleRate, a, p.digit, m.toneLow, m.toneHigh)
		if e <= end {
			j.next = i + 1
		}
	}
	if j.cancel || j.next >= len(j.presses) {
		m.finish(j)
	}
}

// eventPacket returns the telephone-event packet of this tick, or nil
// when no event is sounding (the tick then carries audio).
func (m *media) eventPacket(j *job, pos int64) []byte {
	if j.ev == nil {
		if j.cancel || j.next >= len(j.presses) {
			m.finish(j)
			return nil
		}
		p := j.presses[j.next]
		if j.base+p.start > pos {
			return nil
		}
		code, _ := dtmf.EventCode(p.digit)
		n := int((p.end - p.start + frame - 1) / frame)
		j.ev = &event{code: code, ts: m.ts0 + uint32(pos), n: max(n, 1)}
	}
	ev := j.ev
	if j.cancel && ev.sent < ev.n {
		ev.n = ev.sent + 1 // end the press now: this packet is its first End
	}
	te := dtmf.TelephoneEvent{
		Event:    ev.code,
		End:      ev.sent+1 >= ev.n,
		Volume:   eventVolume,
		Duration: uint16(min(ev.sent+1, ev.n) * frame),
	}
	payload, _ := te.AppendBinary(make([]byte, 0, dtmf.TelephoneEventSize))
	pkt := m.packet(uint8(m.remote.eventPT), ev.sent == 0, ev.ts, payload)
	ev.sent++
	if ev.sent >= ev.n+2 {
		ev.code = 0
		j.ev = nil
		j.next++
		if j.cancel || j.next >= len(j.presses) {
			m.finish(j)
		}
	}
	return pkt
}

// finish ends a job: the plan is wiped, and Type is released by release
// once the job's last packet has been written.
func (m *media) finish(j *job) {
	if m.job != j {
		return
	}
	wipePlan(j.presses)
	if j.ev != nil {
		j.ev.code = 0
	}
	m.job = nil
	m.finished = append(m.finished, j)
}

// release closes the done channels of finished jobs.
func (m *media) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.finished {
		close(j.done)
	}
	m.finished = m.finished[:0]
}

var errBusy = errors.New("caller: still typing the previous digits")

// schedule hands a plan to the media loop, starting at the next tick.
func (m *media) schedule(mode Mode, presses []press) (*job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.job != nil {
		return nil, errBusy
	}
	j := &job{mode: mode, presses: presses, base: m.pos, done: make(chan struct{})}
	m.job = j
	return j, nil
}

// abort stops a job: an event being sent still gets its End packets.
func (m *media) abort(j *job) {
	m.mu.Lock()
	j.cancel = true
	m.mu.Unlock()
}

// update takes the far end's new description (re-INVITE).
func (m *media) update(s stream) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.remote = s
	m.send = s.canSend()
}

func (m *media) current() stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.remote
}

func (m *media) recvLoop() {
	defer m.wg.Done()
	buf := make([]byte, 2048)
	var pcm []int16
	for {
		n, _, err := m.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			select {
			case <-m.stop:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ICMP errors and the like: keep listening
		}
		pkt := buf[:n]
		m.mu.Lock()
		dec := m.dec
		if dec != nil {
			var err error
			if pkt, err = dec.DecryptRTP(pkt[:0], pkt, nil); err != nil {
				m.authFail++
				m.mu.Unlock()
				m.count(&m.dropped)
				continue
			}
		}
		m.mu.Unlock()
		var p rtp.Packet
		if p.Unmarshal(pkt) != nil || p.Version != 2 {
			m.count(&m.dropped)
			continue
		}
		codec, ok := m.codecOf(p.PayloadType)
		if !ok {
			if int(p.PayloadType) == m.current().eventPT {
				m.count(&m.events)
			} else {
				m.count(&m.dropped)
			}
			continue
		}
		pcm = append(pcm[:0], make([]int16, len(p.Payload))...)
		dtmf.DecodeG711(pcm, p.Payload, codec)
		m.rmu.Lock()
		m.received++
		if room := maxReceived - len(m.recv); room > 0 {
			m.recv = append(m.recv, pcm[:min(room, len(pcm))]...)
		}
		m.rmu.Unlock()
	}
}

func (m *media) count(n *int) {
	m.rmu.Lock()
	*n++
	m.rmu.Unlock()
}

// codecOf maps a received payload type to a G.711 law, by the far end's
// description and else by the static assignments.
func (m *media) codecOf(pt uint8) (dtmf.Codec, bool) {
	for _, f := range m.current().formats {
		if f.pt == pt {
			switch f.name {
			case "PCMU":
				return dtmf.PCMU, true
			case "PCMA":
				return dtmf.PCMA, true
			}
			return 0, false
		}
	}
	switch pt {
	case ptPCMU:
		return dtmf.PCMU, true
	case ptPCMA:
		return dtmf.PCMA, true
	}
	return 0, false
}

// audio returns a copy of the decoded audio so far.
func (m *media) audio() []int16 {
	m.rmu.Lock()
	defer m.rmu.Unlock()
	return append([]int16(nil), m.recv...)
}

// stats reports packet counts: sent, received audio, received events,
// dropped.
func (m *media) stats() (sent, recv, events, dropped int) {
	m.mu.Lock()
	sent = m.sent
	m.mu.Unlock()
	m.rmu.Lock()
	defer m.rmu.Unlock()
	return sent, m.received, m.events, m.dropped
}

// errNoSRTP is an answer that does not take our SRTP offer.
var errNoSRTP = errors.New("the far end did not accept SRTP (no matching a=crypto in its answer)")

// answered takes the far end's answer to our offer: on an SRTP call its
// a=crypto must name one of ours, whose key then protects what we send.
func (m *media) answered(st stream, offered []sdes.Crypto) error {
	if len(offered) == 0 {
		if st.savp || len(st.crypto) > 0 {
			return errors.New("the far end answered SRTP to a plain offer")
		}
		return nil
	}
	if len(st.crypto) == 0 {
		return errNoSRTP
	}
	theirs := st.crypto[0]
	for _, o := range offered {
		if o.Tag == theirs.Tag && o.Suite == theirs.Suite {
			return m.setKeys(theirs, o.Keys[0])
		}
	}
	return errNoSRTP
}

// reoffered answers the SRTP part of a re-INVITE: the same key from the
// far end keeps ours; a new one gets a new one of ours. It returns the
// a=crypto of our answer (nil on a plain call).
func (m *media) reoffered(st stream, hasOffer bool) ([]sdes.Crypto, error) {
	m.mu.Lock()
	cur, ours := m.srtp, m.ourKey
	m.mu.Unlock()
	if cur == nil {
		if len(st.crypto) > 0 && st.savp {
			return nil, errors.New("SRTP offered on a plain call")
		}
		return nil, nil
	}
	if !hasOffer {
		return []sdes.Crypto{{Tag: cur.Tag, Suite: cur.Suite, Keys: []sdes.Key{ours}}}, nil
	}
	theirs, answer, ok, err := sdes.Select(st.crypto)
	if err != nil || !ok {
		return nil, errNoSRTP
	}
	if theirs.Suite == cur.Suite && len(theirs.Keys) == len(cur.Keys) && theirs.Keys[0].Equal(cur.Keys[0]) {
		answer.Keys = []sdes.Key{ours}
		return []sdes.Crypto{answer}, nil
	}
	return []sdes.Crypto{answer}, m.setKeys(theirs, answer.Keys[0])
}

// setKeys makes the contexts of an SRTP call: theirs authenticates what
// we receive, ours protects what we send.
func (m *media) setKeys(theirs sdes.Crypto, ours sdes.Key) error {
	prof := map[sdes.Suite]srtp.ProtectionProfile{
		sdes.AESCM128SHA1_80: srtp.ProtectionProfileAes128CmHmacSha1_80,
		sdes.AESCM128SHA1_32: srtp.ProtectionProfileAes128CmHmacSha1_32,
		sdes.AEADAES128GCM:   srtp.ProtectionProfileAeadAes128Gcm,
	}[theirs.Suite]
	ctx := func(k sdes.Key) (*srtp.Context, error) {
		key, salt := k.Master(theirs.Suite)
		var opts []srtp.ContextOption
		if mki := k.MKIBytes(); mki != nil {
			opts = append(opts, srtp.MasterKeyIndicator(mki))
		}
		return srtp.CreateContext(key, salt, prof, opts...)
	}
	dec, err1 := ctx(theirs.Keys[0])
	enc, err2 := ctx(ours)
	if err := errors.Join(err1, err2); err != nil {
		return errors.New("SRTP keys unusable")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.srtp, m.ourKey, m.enc, m.dec = &theirs, ours, enc, dec
	return nil
}

// srtpFailures is the number of packets that did not authenticate.
func (m *media) srtpFailures() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.authFail
}

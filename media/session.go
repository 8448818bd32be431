package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/internal/panics"
)

// Session is one call's media: a port pair per leg, the goroutines that
// relay them, and the carrier direction's masking and digit state.
// Every method is safe for concurrent use.
type Session struct {
	r      *Relay
	callID string
	pairs  [2]pair
	local  [2]netip.AddrPort
	opened time.Time

	mu      sync.Mutex
	legs    [2]legState
	ptmap   [128]Codec
	fill    fillCodec // what replaced packets are made of, before carrier audio says
	capture bool
	c       carrier
	dedup   dtmf.Deduper
	counts  [2][numOutcomes]uint64
	digits  int
	armed   bool // both legs signalled: the media timeout runs
	closed  bool
	rec     *Recording // the recording fork, if any

	lastRTP atomic.Int64 // relay nanos of the last RTP accepted from either leg
	faulted atomic.Bool  // its handling panicked, or its ring failed: every packet is dropped

	done     chan struct{}
	doneOnce sync.Once
	err      atomic.Pointer[error]
	maxTimer *time.Timer
	wg       sync.WaitGroup

	closeOnce sync.Once
	stats     Stats

	ring any // the io_uring engine's ring for this session
}

// legState is what SDP said about a leg's peer and where its packets
// were seen coming from.
type legState struct {
	stream    Stream
	signalled bool
	latched   netip.AddrPort // RTP source (symmetric RTP)
	rtcpSrc   netip.AddrPort // RTCP source
	crypto    *legCrypto     // SRTP on this leg; nil: plain RTP
}

// fillCodec is a payload type the platform accepts and its codec.
type fillCodec struct {
	pt    uint8
	codec Codec
}

// Stats is a session's account, returned by Close.
type Stats struct {
	Duration   time.Duration
	ToPlatform DirStats // carrier → platform
	ToCarrier  DirStats // platform → carrier
	// Digits is the number of de-duplicated carrier key presses.
	Digits int
	// Mask is the carrier maskers' account (summed across codec changes).
	Mask dtmf.MaskStats
}

// DirStats counts one direction's packets, RTCP included.
type DirStats struct {
	Relayed, Replaced, Dropped uint64
}

func newSession(r *Relay, callID string, cp, pp pair) *Session {
	s := &Session{
		r:      r,
		callID: callID,
		pairs:  [2]pair{cp, pp},
		opened: time.Now(),
		done:   make(chan struct{}),
		fill:   fillCodec{pt: 0, codec: PCMU},
	}
	for l, p := range s.pairs {
		s.local[l] = netip.AddrPortFrom(r.cfg.BindIP, uint16(p.port))
	}
	s.c.events = make([]dtmf.Event, 0, 16)
	s.lastRTP.Store(r.nanos(s.opened))
	return s
}

func (s *Session) start() {
	s.r.io.start(s)
	if d := s.r.cfg.MaxDuration; d > 0 {
		s.maxTimer = time.AfterFunc(d, func() { s.finish(ErrMaxDuration) })
	}
}

// CallID is the call this session belongs to.
func (s *Session) CallID() string { return s.callID }

// Local is where leg's peer must send RTP (RTCP: the next port); it goes
// into the SDP sent to that leg.
func (s *Session) Local(leg Leg) netip.AddrPort {
	if leg > Platform {
		return netip.AddrPort{}
	}
	return s.local[leg]
}

var directions = map[string]bool{"": true, "sendrecv": true, "sendonly": true, "recvonly": true, "inactive": true}

// SetRemote takes what the latest SDP (offer or answer) from leg's peer
// says: its address, payload types, direction and ptime. Call it after
// every offer or answer (initial, re-INVITE, UPDATE, hold and resume,
// codec change). A new address forgets the latched source: the peer
// latches again on its next packet.
func (s *Session) SetRemote(leg Leg, st Stream) error {
	if leg > Platform {
		return fmt.Errorf("media: SetRemote: unknown leg %d", leg)
	}
	if !directions[st.Direction] {
		return fmt.Errorf("media: SetRemote %v: unknown direction %q", leg, st.Direction)
	}
	if st.Direction == "" {
		st.Direction = "sendrecv"
	}
	st.Addr, st.RTCP = unmap(st.Addr), unmap(st.RTCP)
	if a := st.Addr.Addr(); a.IsValid() && !a.IsUnspecified() && a.Is4() != s.r.cfg.BindIP.Is4() {
		return fmt.Errorf("media: SetRemote %v: address %v is not in the family of bind_ip %v", leg, a, s.r.cfg.BindIP)
	}
	for _, p := range st.PayloadTypes {
		if p.PT > 127 {
			return fmt.Errorf("media: SetRemote %v: payload type %d out of range 0-127", leg, p.PT)
		}
	}
	if st.PTime < 0 || st.PTime > time.Second {
		return fmt.Errorf("media: SetRemote %v: ptime %v out of range", leg, st.PTime)
	}
	st.PayloadTypes = slices.Clone(st.PayloadTypes)

	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.legs[leg]
	crypto := l.crypto
	if st.SRTP == nil {
		crypto = nil
	} else if crypto == nil || !crypto.keys.equal(st.SRTP) {
		// New keys: new contexts. The same keys again keep theirs, with
		// their rollover counters and replay windows.
		var err error
		if crypto, err = newLegCrypto(st.SRTP); err != nil {
			return fmt.Errorf("media: SetRemote %v: %w", leg, err)
		}
	}
	l.crypto = crypto
	if !l.signalled || l.stream.Addr.Addr() != st.Addr.Addr() || l.stream.Addr.Port() != st.Addr.Port() && st.Addr.Port() != 0 {
		l.latched, l.rtcpSrc = netip.AddrPort{}, netip.AddrPort{}
	}
	wasExpecting := s.armed && s.expectingRTP()
	l.stream, l.signalled = st, true
	s.rebuildPTMap()
	s.armed = s.legs[Carrier].signalled && s.legs[Platform].signalled
	if s.armed && s.expectingRTP() && !wasExpecting {
		// Media just became expected (answer, resume): the timeout
		// counts from now, not from the last packet before the hold.
		s.lastRTP.Store(s.r.nanos(time.Now()))
	}
	return nil
}

// rebuildPTMap merges both legs' payload types: the carrier sends with the
// numbers of the SDP it received, which is the platform's, rewritten. A
// number the two legs map to different codecs is unknown (fail closed).
func (s *Session) rebuildPTMap() {
	var m [128]Codec
	var seen, clash [128]bool
	for _, leg := range []Leg{Carrier, Platform} {
		for _, p := range s.legs[leg].stream.PayloadTypes {
			c := codecOf(p)
			switch {
			case clash[p.PT]:
			case seen[p.PT] && m[p.PT] != c:
				m[p.PT], clash[p.PT] = CodecUnknown, true
			default:
				m[p.PT], seen[p.PT] = c, true
			}
		}
	}
	s.ptmap = m
	// Replacement audio: the platform's first G.711 format, else the
	// carrier's, else PCMU. Carrier audio, once seen, takes over.
	s.fill = fillCodec{pt: 0, codec: PCMU}
	for _, leg := range []Leg{Platform, Carrier} {
		for _, p := range s.legs[leg].stream.PayloadTypes {
			if c := m[p.PT]; c == PCMU || c == PCMA {
				s.fill = fillCodec{pt: p.PT, codec: c}
				return
			}
		}
	}
}

// expectingRTP reports whether a signalled peer says it sends (sendrecv
// or sendonly). Caller holds mu.
func (s *Session) expectingRTP() bool {
	for _, l := range s.legs {
		if l.signalled && (l.stream.Direction == "sendrecv" || l.stream.Direction == "sendonly") {
			return true
		}
	}
	return false
}

// SetCapture turns masking on while a payment capture is active, under
// the CaptureOnly policy; under Always masking never stops and this does
// nothing. The masker runs all the time, so its look-ahead is already
// masked at the moment capture starts.
func (s *Session) SetCapture(active bool) {
	s.mu.Lock()
	s.capture = active
	s.mu.Unlock()
}

// masking reports whether carrier audio is masked now. Caller holds mu.
func (s *Session) masking() bool { return s.r.cfg.Policy == Always || s.capture }

// InfoDigit adds a SIP INFO digit from the carrier to the call's digit
// stream. It is placed on the carrier RTP clock at the time it arrives,
// lasting dur (100 ms when not given), so that the same press seen as
// RFC 4733 or in-band is reported once.
func (s *Session) InfoDigit(d dtmf.Digit, dur time.Duration) {
	if !d.Valid() {
		return
	}
	if dur <= 0 {
		dur = 100 * time.Millisecond
	}
	// A panic here is one in the call's digit handling, as on the relay's
	// thread: the session ends, and the SIP handler that called goes on.
	defer s.recoverFault("info_digit")
	if s.faulted.Load() {
		return
	}
	s.deliver(s.infoDigit(d, dur, time.Now()))
}

func (s *Session) infoDigit(d dtmf.Digit, dur time.Duration, now time.Time) []Digit {
	var out [1]Digit
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	pos := s.c.clockAt(now)
	e := dtmf.Event{Digit: d, Start: pos, End: pos + int64(dur/(time.Second/dtmf.SampleRate)), Source: dtmf.SIPInfo}
	return s.addDigit(e, now, out[:0])
}

// addDigit de-duplicates a press and, if fresh, appends it to out.
// Caller holds mu.
func (s *Session) addDigit(e dtmf.Event, now time.Time, out []Digit) []Digit {
	if !s.dedup.Add(e) {
		return out
	}
	s.digits++
	if int(e.Source) < len(s.r.m.digits) && s.r.m.digits[e.Source] != nil {
		s.r.m.digits[e.Source].Inc()
	}
	return append(out, Digit{CallID: s.callID, Digit: e.Digit, Source: e.Source, At: s.c.wallAt(e.Start, now)})
}

// deliver hands digits to the sink outside the session lock, so a sink
// that calls back into the session (SetCapture) cannot deadlock.
func (s *Session) deliver(ds []Digit) {
	if s.r.sink == nil {
		return
	}
	for _, d := range ds {
		s.r.sink.Digit(d)
	}
}

// Done is closed on media timeout or max duration, and by Close (Err
// stays nil then), so a goroutine waiting on it always ends.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why Done was closed: ErrMediaTimeout, ErrMaxDuration, or nil
// (not closed, or closed by Close).
func (s *Session) Err() error {
	if p := s.err.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Session) finish(err error) {
	s.doneOnce.Do(func() {
		if err != nil {
			s.err.Store(&err)
			s.r.log.Info("media session ended", zap.String("call_id", s.callID), zap.Error(err))
		}
		close(s.done)
	})
}

// checkTimeout is the media timeout rule: once both legs are signalled,
// and while at least one peer says it sends (sendrecv or sendonly), no RTP
// accepted from either leg for MediaTimeout ends the session. When no peer
// sends (both sides on hold with inactive or recvonly), silence is what
// SDP asked for and the timeout is suspended: SIP (session timers, BYE)
// decides. A customer on hold (sendonly from the platform, music on hold)
// keeps the call alive through the platform's RTP.
func (s *Session) checkTimeout(now time.Time) {
	s.mu.Lock()
	active := s.armed && !s.closed && s.expectingRTP()
	s.mu.Unlock()
	if !active {
		return
	}
	if idle := time.Duration(s.r.nanos(now) - s.lastRTP.Load()); idle > s.r.cfg.MediaTimeout {
		s.finish(ErrMediaTimeout)
	}
}

// checkTimeoutSafe is checkTimeout on the relay's watcher: a panic
// there ends this session, and the watcher goes on with the others.
func (s *Session) checkTimeoutSafe(now time.Time) {
	defer s.recoverFault("timeout")
	s.checkTimeout(now)
}

// Close stops relaying, frees the ports and returns the session's
// account. A press still in progress is reported first. It is idempotent.
func (s *Session) Close() Stats {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if s.maxTimer != nil {
			s.maxTimer.Stop()
		}
		s.r.io.stop(s)
		s.mu.Lock()
		rec := s.rec
		s.mu.Unlock()
		if rec != nil {
			rec.Close()
		}
		func() {
			defer s.recoverFault("close")
			s.deliver(s.closeState())
		}()
		for _, p := range s.pairs {
			s.r.ports.put(p)
		}
		s.r.forget(s)
		s.finish(nil)
	})
	return s.stats
}

// closeState takes the session's account and forgets its digits, and
// returns the press in progress to report. After a fault the press is
// not reported (the call failed; the assembler's state is not to be
// trusted), and a second panic here still frees the ports and wipes.
func (s *Session) closeState() (got []Digit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		// The Deduper remembers the call's latest key presses, and events
		// their digits: card data that no one needs once the call is over.
		s.dedup.Reset()
		clear(s.c.events[:cap(s.c.events)])
		if v := recover(); v != nil {
			s.r.log.Error("media: panic closing a session; its ports are freed",
				append([]zap.Field{zap.String("call_id", s.callID)}, panics.Fields(v)...)...)
			got = nil
		}
	}()
	now := time.Now()
	if !s.faulted.Load() {
		for _, e := range s.c.asm.Flush(s.c.events[:0]) {
			got = s.addDigit(s.c.toCall(e), now, got)
		}
	}
	s.stats = Stats{
		Duration:   now.Sub(s.opened),
		ToPlatform: s.dirStats(toPlatform),
		ToCarrier:  s.dirStats(toCarrier),
		Digits:     s.digits,
	}
	s.stats.Mask = s.c.maskStats()
	return got
}

func (s *Session) dirStats(d direction) DirStats {
	var st DirStats
	for o := outcome(1); o < numOutcomes; o++ {
		switch o.action() {
		case "relayed":
			st.Relayed += s.counts[d][o]
		case "replaced":
			st.Replaced += s.counts[d][o]
		default:
			st.Dropped += s.counts[d][o]
		}
	}
	return st
}

// count records one packet's fate. Caller holds mu.
func (s *Session) count(d direction, o outcome) {
	s.counts[d][o]++
	s.r.m.packets[d][o].Inc()
	if d == toPlatform && s.counts[d][o] == 1 && failClosed[o] && s.r.fail != nil {
		go s.failClosed(o.reason())
	}
}

// failClosed tells Options.FailClosed, on its own goroutine: a panic
// there ends this call, not the process.
func (s *Session) failClosed(reason string) {
	defer s.recoverFault("fail_closed")
	s.r.fail(s.callID, reason)
}

// failClosed are the outcomes of carrier packets that could not be
// inspected, reported once per call to Options.FailClosed. Foreign sources
// are spoofing, not a failure to inspect; they are only counted.
var failClosed = [numOutcomes]bool{
	replaceUnknown: true, dropOversize: true, dropShort: true, dropVersion: true,
	dropCSRC: true, dropExtension: true, dropPadding: true,
	dropSRTPAuth: true, dropSRTPRejected: true,
}

// acceptRTP is symmetric RTP latching. A packet is accepted from the
// latched source; before latching, from any port of the signalled IP (a
// NAT may rewrite the port), and that source is latched. A packet from the
// exact signalled address:port always wins the latch back. Anything else
// is a foreign source. On hold with 0.0.0.0 only the latched source is
// accepted. Caller holds mu.
func (l *legState) acceptRTP(from netip.AddrPort) bool {
	if l.latched.IsValid() && from == l.latched {
		return true
	}
	if !l.signalled {
		return false
	}
	sig := l.stream.Addr
	if !sig.Addr().IsValid() || sig.Addr().IsUnspecified() || from.Addr() != sig.Addr() {
		return false
	}
	if !l.latched.IsValid() || from == sig {
		l.latched = from
		return true
	}
	return false
}

// rtpDest is where RTP for this leg's peer goes: nowhere on hold
// (0.0.0.0, port 0, sendonly, inactive), else the latched source
// (symmetric RTP), else the signalled address. Caller holds mu.
func (l *legState) rtpDest() (netip.AddrPort, outcome) {
	if !l.signalled {
		return netip.AddrPort{}, dropNoRemote
	}
	sig := l.stream.Addr
	if !sig.Addr().IsValid() || sig.Addr().IsUnspecified() || sig.Port() == 0 ||
		l.stream.Direction == "sendonly" || l.stream.Direction == "inactive" {
		return netip.AddrPort{}, dropHold
	}
	if l.latched.IsValid() {
		return l.latched, outcomeNone
	}
	return sig, outcomeNone
}

// acceptRTCP takes RTCP from the peer's IP (RTP latched or signalled) and
// latches its source. RTCP is never inspected. Caller holds mu.
func (l *legState) acceptRTCP(from netip.AddrPort) bool {
	if l.rtcpSrc.IsValid() && from == l.rtcpSrc {
		return true
	}
	ip := l.latched.Addr()
	if !ip.IsValid() {
		ip = l.stream.Addr.Addr()
	}
	if !ip.IsValid() || ip.IsUnspecified() || from.Addr() != ip {
		return false
	}
	l.rtcpSrc = from
	return true
}

// rtcpDest is where RTCP for this leg's peer goes: RTCP continues on hold
// (RFC 3264 §5.1), so only a missing address stops it.
func (l *legState) rtcpDest() (netip.AddrPort, outcome) {
	switch {
	case !l.signalled:
		return netip.AddrPort{}, dropNoRemote
	case l.rtcpSrc.IsValid():
		return l.rtcpSrc, outcomeNone
	case l.stream.RTCP.Addr().IsValid() && !l.stream.RTCP.Addr().IsUnspecified() && l.stream.RTCP.Port() != 0:
		return l.stream.RTCP, outcomeNone
	case l.latched.IsValid():
		return netip.AddrPortFrom(l.latched.Addr(), l.latched.Port()+1), outcomeNone
	case l.stream.Addr.Addr().IsValid() && !l.stream.Addr.Addr().IsUnspecified() && l.stream.Addr.Port() != 0:
		return netip.AddrPortFrom(l.stream.Addr.Addr(), l.stream.Addr.Port()+1), outcomeNone
	}
	return netip.AddrPort{}, dropHold
}

// recvBuf is larger than MaxPacket so that oversize datagrams are seen as
// such rather than silently truncated to a valid-looking packet.
const recvBuf = 2048

// loop reads one of the session's sockets (the goroutine engine): leg's
// RTP or RTCP socket, sending what relay decides from the other leg's
// socket of the same kind.
func (s *Session) loop(leg Leg, rtcp bool) {
	defer s.wg.Done()
	defer s.recoverFault("loop")
	conn, send := s.pairs[leg].rtp.conn, s.pairs[1-leg].rtp.conn
	if rtcp {
		conn, send = s.pairs[leg].rtcp.conn, s.pairs[1-leg].rtcp.conn
	}
	in := make([]byte, recvBuf)
	// Room past MaxPacket for what SRTP adds toward an SRTP peer.
	out := make([]byte, MaxPacket, recvBuf)
	digits := make([]Digit, 0, 8)
	var fk forkOut
	if !rtcp {
		fk.buf = make([]byte, MaxPacket) // RTCP is not recorded
	}
	for {
		n, from, err := conn.ReadFromUDPAddrPort(in)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		var pkt []byte
		var dst netip.AddrPort
		if pkt, dst, digits = s.relay(leg, rtcp, in[:n], unmap(from), time.Now(), out, digits, &fk); pkt != nil {
			send.WriteToUDPAddrPort(pkt, dst)
		}
		if fk.n > 0 {
			fk.rec.sendConn(&fk)
		}
	}
}

// relay is one received datagram's fate, the same for both engines: what
// leaves by the other leg's socket of the same kind (nil: nothing) and
// where to. Carrier RTP is inspected and rewritten into out (MaxPacket
// bytes); everything else leaves as it came, so the result may alias in.
// Digits the packet completes are delivered before relay returns; digits
// is scratch space for them, handed back for reuse. A copy of an RTP
// packet for the session's recording fork is left in fk (fk.n 0: none);
// the engine sends it after the packet.
//
// A panic in there (the masker, the sink) is a fault of this session
// alone: the packet is dropped, the session with it (ErrFault), and the
// engine's thread goes on with the other calls.
func (s *Session) relay(leg Leg, rtcp bool, in []byte, from netip.AddrPort, now time.Time, out []byte, digits []Digit, fk *forkOut) (pkt []byte, dst netip.AddrPort, ds []Digit) {
	fk.n = 0
	defer func() {
		if v := recover(); v != nil {
			s.fault("packet", v)
			pkt, dst, ds = nil, netip.AddrPort{}, digits[:0]
			fk.n = 0 // the recorder gets nothing the platform does not
		}
	}()
	if s.faulted.Load() {
		s.dropFaulted(leg)
		return nil, netip.AddrPort{}, digits[:0]
	}
	switch {
	case rtcp:
		dir := toPlatform
		if leg == Platform {
			dir = toCarrier
		}
		pkt, dst := s.rtcpPacket(leg, 1-leg, dir, in, from, out)
		return pkt, dst, digits
	case leg == Platform:
		pkt, dst := s.platformPacket(in, from, now, out, fk)
		return pkt, dst, digits
	}
	res := s.carrierPacket(in, from, now, out, digits[:0], fk)
	if len(res.digits) > 0 {
		s.deliver(res.digits)
	}
	if res.n == 0 {
		return nil, netip.AddrPort{}, res.digits[:0]
	}
	if !res.arrived.IsZero() {
		s.r.m.delay.Observe(now.Sub(res.arrived).Seconds())
	}
	return out[:res.n], res.dst, res.digits[:0]
}

// platformPacket decides the fate of platform RTP: relayed to the
// carrier with only the address rewritten, or, when either leg has SRTP,
// authenticated and decrypted with the platform's keys and protected
// with the carrier leg's own. A packet that fails authentication is
// dropped. The result is in or out. The recording fork's agent stream
// gets the packet as relayed, before the carrier leg's SRTP (fk may be
// nil: no fork).
func (s *Session) platformPacket(in []byte, from netip.AddrPort, now time.Time, out []byte, fk *forkOut) ([]byte, netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.legs[Platform].acceptRTP(from) {
		s.count(toCarrier, dropForeign)
		return nil, netip.AddrPort{}
	}
	pkt := in
	if lc := s.legs[Platform].crypto; lc != nil {
		var o outcome
		if pkt, o = lc.decryptRTP(pkt); o != outcomeNone {
			s.count(toCarrier, o)
			return nil, netip.AddrPort{}
		}
	}
	if len(pkt) > MaxPacket {
		s.count(toCarrier, dropOversize)
		return nil, netip.AddrPort{}
	}
	s.lastRTP.Store(s.r.nanos(now))
	dst, o := s.legs[Carrier].rtpDest()
	if o != outcomeNone {
		s.count(toCarrier, o)
		return nil, dst
	}
	if s.rec != nil {
		s.forkCopy(fk, streamAgent, pkt)
	}
	if lc := s.legs[Carrier].crypto; lc != nil {
		if pkt, o = lc.encryptRTP(out[:copy(out, pkt)]); o != outcomeNone {
			s.count(toCarrier, o)
			if fk != nil {
				fk.n = 0 // not relayed, not recorded
			}
			return nil, netip.AddrPort{}
		}
	}
	s.count(toCarrier, relayPassthru)
	return pkt, dst
}

// rtcpPacket relays RTCP from leg to other uninspected, unprotected
// (SRTCP) and protected again where a leg has SRTP.
func (s *Session) rtcpPacket(leg, other Leg, dir direction, in []byte, from netip.AddrPort, out []byte) ([]byte, netip.AddrPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.legs[leg].acceptRTCP(from) {
		s.count(dir, dropForeign)
		return nil, netip.AddrPort{}
	}
	pkt := in
	if lc := s.legs[leg].crypto; lc != nil {
		var o outcome
		if pkt, o = lc.decryptRTCP(pkt); o != outcomeNone {
			s.count(dir, o)
			return nil, netip.AddrPort{}
		}
	}
	if len(pkt) > MaxPacket {
		s.count(dir, dropOversize)
		return nil, netip.AddrPort{}
	}
	dst, o := s.legs[other].rtcpDest()
	if o != outcomeNone {
		s.count(dir, o)
		return nil, dst
	}
	if lc := s.legs[other].crypto; lc != nil {
		if pkt, o = lc.encryptRTCP(out[:copy(out, pkt)]); o != outcomeNone {
			s.count(dir, o)
			return nil, netip.AddrPort{}
		}
	}
	s.count(dir, relayRTCP)
	return pkt, dst
}

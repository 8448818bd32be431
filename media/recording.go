package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/panics"
)

// Recording is a call's SIPREC fork (RFC 7866): a copy of each packet the
// relay forwards on either leg, sent as plain RTP from two ports of its own
// to a recording server (SRS). The customer stream is what goes to the
// platform leg, after the masker (DESIGN.md invariant 5 holds for the
// recorder as for the agent); the agent stream is what goes to the
// carrier leg. Packets keep their payload type, sequence number, timestamp
// and SSRC; the SRTP of either call leg is removed before the copy.
//
// A fork never affects its call: a send that fails is counted and
// forgotten, and a panic in the fork's code closes the fork, not the call.
type Recording struct {
	s     *Session
	pairs [2]pair // by forkStream; RTCP sockets only hold their port
	local [2]netip.AddrPort

	// Guarded by s.mu.
	remote [2]netip.AddrPort // invalid: that stream is not sent
	closed bool

	faulted   atomic.Bool
	closeOnce sync.Once

	// The io_uring engine's, written on the ring's thread only (slots)
	// or before Record returns (onRing).
	slots  [2]int
	onRing bool
}

// forkStream is one of a fork's two streams.
type forkStream uint8

const (
	streamCustomer forkStream = iota // carrier → platform, masked
	streamAgent                      // platform → carrier
)

var forkStreamLabels = [2]string{"customer", "agent"}

// forkOut is where the packet functions leave a copy for the fork, in a
// buffer of the engine's thread; the engine sends it after the packet
// itself, outside the session's lock.
type forkOut struct {
	buf    []byte // MaxPacket bytes
	n      int    // bytes of buf to send; 0: nothing
	dst    netip.AddrPort
	rec    *Recording
	stream forkStream
}

// errRecording says why Record could not open a fork.
var errRecording = errors.New("media: Record")

// Record opens the session's recording fork: two RTP ports (RTCP on +1)
// from the relay's port range, one per stream. Nothing is sent until
// SetRemote; Session.Close closes it too. A session has one fork at a
// time: Record again after its Close opens a new one.
func (s *Session) Record() (*Recording, error) {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: the session is closed", errRecording)
	case s.rec != nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("%w: the session is already recording", errRecording)
	}
	s.mu.Unlock()
	if s.faulted.Load() {
		return nil, fmt.Errorf("%w: %w", errRecording, ErrFault)
	}
	// The fork's sockets are of the kind its session's engine moves: bare
	// descriptors on a ring, *net.UDPConn for goroutines.
	raw := s.ring != nil
	rec := &Recording{s: s, slots: [2]int{-1, -1}}
	for st := range rec.pairs {
		p, err := s.r.ports.getAs(raw)
		if err != nil {
			for _, q := range rec.pairs[:st] {
				s.r.ports.put(q)
			}
			return nil, err
		}
		// Nothing the SRS sends is read: a small buffer bounds what it can
		// make the kernel hold.
		p.rtp.shrinkRecv()
		p.rtcp.shrinkRecv()
		rec.pairs[st] = p
		rec.local[st] = netip.AddrPortFrom(s.r.cfg.BindIP, uint16(p.port))
	}
	if err := s.r.io.startFork(rec); err != nil {
		rec.free()
		return nil, fmt.Errorf("%w: %w", errRecording, err)
	}
	s.mu.Lock()
	if s.closed || s.rec != nil {
		s.mu.Unlock()
		s.r.io.stopFork(rec)
		rec.free()
		return nil, fmt.Errorf("%w: the session closed or started recording meanwhile", errRecording)
	}
	s.rec = rec
	s.mu.Unlock()
	s.r.m.forks.Inc()
	s.r.log.Debug("media recording fork opened", zap.String("call_id", s.callID),
		zap.Stringer("customer", rec.local[streamCustomer]), zap.Stringer("agent", rec.local[streamAgent]))
	return rec, nil
}

func (r *Recording) free() {
	for _, p := range r.pairs {
		r.s.r.ports.put(p)
	}
}

// Local is where the fork sends from, for the SDP offered to the SRS:
// the customer stream's port and the agent stream's.
func (r *Recording) Local() (customer, agent netip.AddrPort) {
	return r.local[streamCustomer], r.local[streamAgent]
}

// SetRemote says where the SRS receives each stream (its answer's m=
// lines, in the offer's order). A stream whose Addr is invalid,
// unspecified or port 0, or whose direction says the SRS does not
// receive (sendonly, inactive), is not sent. It may be called again (a
// re-INVITE from the SRS). The fork sends plain RTP only: a stream with
// SRTP is an error.
func (r *Recording) SetRemote(customer, agent Stream) error {
	var dst [2]netip.AddrPort
	for st, in := range [2]Stream{customer, agent} {
		d, err := r.s.r.forkDest(in)
		if err != nil {
			return fmt.Errorf("media: Recording.SetRemote %s: %w", forkStreamLabels[st], err)
		}
		dst[st] = d
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.closed {
		return errors.New("media: Recording.SetRemote: the recording is closed")
	}
	r.remote = dst
	return nil
}

// forkDest is where a fork stream goes by what the SRS's SDP says:
// nowhere (the zero AddrPort) when it does not receive.
func (rl *Relay) forkDest(st Stream) (netip.AddrPort, error) {
	if !directions[st.Direction] {
		return netip.AddrPort{}, fmt.Errorf("unknown direction %q", st.Direction)
	}
	if st.SRTP != nil {
		return netip.AddrPort{}, errors.New("SRTP toward the recorder is not supported: offer it RTP/AVP")
	}
	a := unmap(st.Addr)
	if !a.Addr().IsValid() || a.Addr().IsUnspecified() || a.Port() == 0 ||
		st.Direction == "sendonly" || st.Direction == "inactive" {
		return netip.AddrPort{}, nil
	}
	if a.Addr().Is4() != rl.cfg.BindIP.Is4() {
		return netip.AddrPort{}, fmt.Errorf("address %v is not in the family of bind_ip %v", a, rl.cfg.BindIP)
	}
	return a, nil
}

// Close stops the fork and frees its ports; idempotent. The call goes on.
// It waits for the relay's thread to let go of the fork's sockets, so,
// like Session.Close, it is not for the DigitSink to call.
func (r *Recording) Close() {
	r.closeOnce.Do(func() {
		s := r.s
		s.mu.Lock()
		if s.rec == r {
			s.rec = nil
		}
		r.closed = true
		s.mu.Unlock()
		// No packet is copied for it any more; the engine lets go of its
		// sockets (a send in flight ends) before they close.
		s.r.io.stopFork(r)
		r.free()
		s.r.m.forks.Dec()
		s.r.log.Debug("media recording fork closed", zap.String("call_id", s.callID))
	})
}

// forkCopy copies a packet being forwarded on stream st into fk, if the
// session records and the SRS receives that stream. pkt is the packet as
// it leaves, before SRTP toward its leg. Caller holds mu.
func (s *Session) forkCopy(fk *forkOut, st forkStream, pkt []byte) {
	rec := s.rec
	if rec == nil || fk == nil || !rec.remote[st].IsValid() {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			fk.n = 0
			s.rec = nil // no further copy; Close detaches it anyway
			rec.fault("copy", st, v)
		}
	}()
	runTestForkFault("copy")
	fk.n = copy(fk.buf, pkt)
	fk.dst, fk.rec, fk.stream = rec.remote[st], rec, st
}

// fault drops a fork after a panic in its code: counted, logged, and
// closed on a goroutine of its own (Close waits for the engine, which
// may be the caller). The call goes on.
func (r *Recording) fault(where string, st forkStream, v any) {
	s := r.s
	s.r.m.forkPackets[st][forkFault].Inc()
	if r.faulted.CompareAndSwap(false, true) {
		s.r.log.Error("media: panic in a recording fork; the fork is closed, the call goes on",
			append([]zap.Field{zap.String("call_id", s.callID), zap.String("where", where)}, panics.Fields(v)...)...)
		go r.Close()
	}
}

// sendConn sends fk's copy from the fork's socket (the goroutine engine).
func (r *Recording) sendConn(fk *forkOut) {
	defer func() {
		if v := recover(); v != nil {
			r.fault("send", fk.stream, v)
		}
	}()
	if r.faulted.Load() {
		return
	}
	runTestForkFault("send")
	_, err := r.pairs[fk.stream].rtp.conn.WriteToUDPAddrPort(fk.buf[:fk.n], fk.dst)
	if errors.Is(err, net.ErrClosed) {
		return // closed under the send: the fork is gone, not failing
	}
	r.count(fk.stream, err == nil)
}

func (r *Recording) count(st forkStream, ok bool) {
	res := forkSent
	if !ok {
		res = forkSendError
	}
	r.s.r.m.forkPackets[st][res].Inc()
}

// shrinkRecv makes the socket's receive buffer as small as the kernel
// allows: the fork never reads its sockets.
func (sk sock) shrinkRecv() {
	if sk.conn != nil {
		sk.conn.SetReadBuffer(1)
	} else if sk.raw {
		setRecvBufFD(sk.fd, 1)
	}
}

// testForkFault, when set, is called in the fork's copy ("copy", session
// locked) and send ("send") of every packet: a panic in it is one in fork
// code. Only tests set it.
var testForkFault atomic.Pointer[func(where string)]

func runTestForkFault(where string) {
	if h := testForkFault.Load(); h != nil {
		(*h)(where)
	}
}

package loadtest

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// The generator plays every call's customer and agent from a few shared
// sockets, moving packets with sendmmsg and recvmmsg, so that on two cores
// it leaves as much CPU as it can to the relay it measures. Each call
// sends on its own 1 ms slot of the 20 ms packet interval, as real calls
// spread over time, rather than all calls in one burst.

// genSockets is how many sockets the generator uses per side; the
// receivers of each run in their own goroutine.
const genSockets = 2

// stamp is written into each payload: a magic byte, the packet index
// (24 bits) and the send time in µs since the run started.
const (
	stampLen   = 8
	stampMagic = 0xA5
	ptime      = 160 // samples per packet
	pktLen     = 12 + ptime
	slots      = 20 // 1 ms send slots per 20 ms packet interval
)

// loadCall is one call: where the relay wants its packets, and its next
// packets, built in place so that a slot's batch allocates nothing.
type loadCall struct {
	side       int // which generator socket of each side
	seq        uint16
	ssrc       uint32
	digits     bool         // this call presses digits
	cmsg, pmsg ipv4.Message // addressed to the relay's sockets for this call
	// sentAt is when each recent sequence number went out (Unix ns), so
	// that the receiver can tell the relay's own delay from the
	// look-ahead: a masked packet leaves when a later one arrives.
	sentAt [64]atomic.Int64
}

const ssrcBase = 0x1000

func newLoadCall(i int) *loadCall {
	c := &loadCall{side: i % genSockets, ssrc: ssrcBase + uint32(i), digits: i%10 == 0}
	// Room for an SRTP tag: the packet is protected in place.
	c.cmsg.Buffers = [][]byte{make([]byte, pktLen, pktLen+srtpTag)}
	c.pmsg.Buffers = [][]byte{make([]byte, pktLen, pktLen+srtpTag)}
	return c
}

func (c *loadCall) setRelay(toCarrier, toPlatform netip.AddrPort) {
	c.cmsg.Addr, c.pmsg.Addr = net.UDPAddrFromAddrPort(toCarrier), net.UDPAddrFromAddrPort(toPlatform)
}

// genSide is one side's sockets: the carrier side plays customers (it
// receives what the relay sends to the carrier: platform audio), the
// platform side plays agents (it receives masked carrier audio).
type genSide struct {
	conns [genSockets]*net.UDPConn
	pcs   [genSockets]*ipv4.PacketConn
	kts   [genSockets]bool // kernel receive timestamps on
}

func newGenSide() (*genSide, error) {
	g := &genSide{}
	for i := range g.conns {
		c, err := listenLoopback()
		if err != nil {
			g.close()
			return nil, err
		}
		setBuffers(c)
		g.conns[i], g.pcs[i] = c, ipv4.NewPacketConn(c)
		g.kts[i] = enableRxTimestamps(c)
	}
	return g, nil
}

func (g *genSide) close() {
	for _, c := range g.conns {
		if c != nil {
			c.Close()
		}
	}
}

// setBuffers asks for 4 MiB socket buffers, past net.core.*mem_max when
// the process may (root), so that the generator's own sockets never drop
// a burst and the loss counted is the relay's.
func setBuffers(c *net.UDPConn) {
	const size = 4 << 20
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
	})
}

// enableRxTimestamps turns on SO_TIMESTAMPNS: the kernel stamps each
// datagram when the relay's send puts it on this socket, so the latency
// measured is the relay's and not the generator's wait to be scheduled.
func enableRxTimestamps(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		ok = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) == nil
	})
	return ok
}

// rxTimestamp finds SCM_TIMESTAMPNS in a datagram's control data: the
// kernel's receive time in Unix nanoseconds, or 0.
func rxTimestamp(oob []byte) int64 {
	const hdr = unix.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return 0
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l >= hdr+16 {
			d := oob[hdr:]
			sec := int64(binary.NativeEndian.Uint64(d))
			nsec := int64(binary.NativeEndian.Uint64(d[8:]))
			return sec*1e9 + nsec
		}
		oob = oob[cmsgAlign(l):]
	}
	return 0
}

func cmsgAlign(n int) int { return (n + 7) &^ 7 }

// generator is one load run's traffic: it sends both directions of every
// call and receives what the relay forwards.
type generator struct {
	o          Options
	calls      []*loadCall
	carrier    *genSide // customers: send to the relay's carrier leg
	platform   *genSide // agents: send to the relay's platform leg
	startNanos int64    // Unix nanoseconds at the start: stamps count from here
	q, outOff  int      // stamp offsets in carrier packets, before and after the look-ahead
	tone       []byte
	res        *Result
	wg         sync.WaitGroup
	encC, encP *genCrypto // --srtp: the customers' and the agents' keys (the sender's)
	srs        *genSide   // --record: the recorder, customer stream on conns[0], agent on conns[1]
}

// record counts what reaches one of the recorder's sockets, and of it
// the packets that are plain RTP carrying a stamp at off.
func (g *generator) record(pc *ipv4.PacketConn, off int, count, stamped *atomic.Int64) {
	defer g.wg.Done()
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 2048)}
	}
	for {
		n, err := pc.ReadBatch(ms, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		count.Add(int64(n))
		for _, m := range ms[:n] {
			b := m.Buffers[0][:m.N]
			if len(b) >= 12+off+stampLen && b[0] == 0x80 && b[12+off] == stampMagic && b[13+off] == 0 {
				stamped.Add(1)
			}
		}
	}
}

// receive counts packets on a generator socket and measures two delays:
// from the send time of the stamp found at off in the payload (the audio's
// delay on the wire, look-ahead included), and from the send time of the
// packet with the same call and sequence number (the relay's own delay:
// the look-ahead holds audio, not packets, so the packet that releases a
// masked packet is the one that bears its header).
func (g *generator) receive(pc *ipv4.PacketConn, kts bool, off int, count *atomic.Int64, h, own *latHist, dec *genCrypto) {
	defer g.wg.Done()
	ms := make([]ipv4.Message, 64)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 2048)}
		ms[i].OOB = make([]byte, 64)
	}
	for {
		n, err := pc.ReadBatch(ms, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		fallback := time.Now().UnixNano()
		count.Add(int64(n))
		for _, m := range ms[:n] {
			if m.N < 12 {
				continue
			}
			b := m.Buffers[0][:m.N]
			if dec != nil {
				var ok bool
				if b, ok = dec.unprotect(b); !ok {
					g.res.srtpFail.Add(1)
					continue
				}
			}
			at := fallback
			if kts {
				if t := rxTimestamp(m.OOB[:m.NN]); t != 0 {
					at = t
				}
			}
			seq := binary.BigEndian.Uint16(b[2:])
			if i := int(binary.BigEndian.Uint32(b[8:])) - ssrcBase; i >= 0 && i < len(g.calls) {
				if sent := g.calls[i].sentAt[seq%64].Load(); sent != 0 {
					own.add(time.Duration(at - sent))
				}
			}
			if len(b) < 12+off+stampLen {
				continue
			}
			s := b[12+off:]
			if s[0] != stampMagic || s[1] != 0 {
				continue // masked, a tone, or the initial fill
			}
			sent := int64(binary.BigEndian.Uint32(s[4:])) * 1000
			h.add(time.Duration(at - g.startNanos - sent))
		}
	}
}

// sendSlot sends the packets of the calls on slot k (k counts 1 ms slots
// since the start) both ways. Slot times are the schedule, not the clock,
// so a late wake-up sends the same packets, only later.
func (g *generator) sendSlot(k int, cm, pm *[genSockets][]ipv4.Message) {
	toneIdx := g.toneAt(time.Duration(k) * time.Millisecond)
	for i := range genSockets {
		cm[i], pm[i] = cm[i][:0], pm[i][:0]
	}
	now := time.Now().UnixNano()
	us := uint32((now - g.startNanos) / 1000)
	for i := k % slots; i < len(g.calls); i += slots {
		c := g.calls[i]
		// The tone of a press starts on the slot where toneAt said 0,
		// so that a call's press runs 5 packets whatever its slot.
		tone := c.digits && toneIdx >= 0
		cbuf, pbuf := c.cmsg.Buffers[0][:pktLen], c.pmsg.Buffers[0][:pktLen]
		putLoadRTP(cbuf, c.seq, c.ssrc)
		pay := cbuf[12:]
		if tone {
			if toneIdx == 0 {
				g.res.digitsSent.Add(1)
			}
			copy(pay, g.tone[toneIdx*ptime:(toneIdx+1)*ptime])
		} else {
			for j := range pay {
				pay[j] = 0xFE // µ-law near silence
			}
			// Not in a tone: a stamp would be a loud click in it.
			putStamp(pay[g.q:], c.seq, us)
		}
		copy(pbuf, cbuf[:12])
		for j := range pbuf[12:] {
			pbuf[12+j] = 0xFE
		}
		putStamp(pbuf[12:], c.seq, us)
		c.cmsg.Buffers[0], c.pmsg.Buffers[0] = cbuf, pbuf
		if g.encC != nil {
			c.cmsg.Buffers[0], c.pmsg.Buffers[0] = g.encC.protect(cbuf), g.encP.protect(pbuf)
		}
		c.sentAt[c.seq%64].Store(now)
		cm[c.side] = append(cm[c.side], c.cmsg)
		pm[c.side] = append(pm[c.side], c.pmsg)
		c.seq++
	}
	for i := range genSockets {
		g.res.sent[0].Add(int64(writeAll(g.carrier.pcs[i], cm[i])))
		g.res.sent[1].Add(int64(writeAll(g.platform.pcs[i], pm[i])))
	}
}

// toneAt says which 20 ms packet of a 100 ms press is due at since, or -1:
// presses start after the masker's first fill and end well before the run
// does, so that each can be reported.
func (g *generator) toneAt(since time.Duration) int {
	if g.o.DigitsEvery <= 0 || since < 500*time.Millisecond {
		return -1
	}
	phase := since % g.o.DigitsEvery
	if phase >= 100*time.Millisecond || since-phase+300*time.Millisecond > time.Second+g.o.Duration {
		return -1
	}
	return int(phase / (20 * time.Millisecond))
}

func writeAll(pc *ipv4.PacketConn, ms []ipv4.Message) int {
	sent := 0
	for len(ms) > 0 {
		n, err := pc.WriteBatch(ms, 0)
		if err != nil {
			// A full loopback queue: the rest of this slot is lost on
			// the generator's side and counted as not sent.
			return sent
		}
		sent += n
		ms = ms[n:]
	}
	return sent
}

func putLoadRTP(b []byte, seq uint16, ssrc uint32) {
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*ptime)
	binary.BigEndian.PutUint32(b[8:], ssrc)
}

func putStamp(b []byte, seq uint16, us uint32) {
	b[0] = stampMagic
	b[1], b[2], b[3] = 0, byte(seq>>8), byte(seq)
	binary.BigEndian.PutUint32(b[4:], us)
}

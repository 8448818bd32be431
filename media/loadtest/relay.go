package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"

	"github.com/tonevault/tonevault/media"
)

// The relays a load run can measure. Only "tonevault" is the product; the
// other two are yardsticks run through the same generator on the same
// machine, so that the product's figures can be read against what the
// kernel alone costs here.
const (
	RelayTonevault = "tonevault" // media.Relay: per-call ports, inspection, masking
	RelayBare      = "bare"      // per-call ports, one goroutine per socket, no inspection
	RelayBatched   = "batched"   // one port per side for every call, recvmmsg/sendmmsg, no inspection
)

var RelayKinds = []string{RelayTonevault, RelayBare, RelayBatched, RelayRtpengine}

// relayHost is the relay under load: open gets the generator's two peer
// addresses of one call and answers where that call's packets go.
type relayHost interface {
	open(carrierPeer, platformPeer netip.AddrPort) (toCarrier, toPlatform netip.AddrPort, err error)
	// close stops relaying and says how many digits the relay reported.
	close() int64
	// io is the packet engine the relay runs on.
	io() string
}

func newRelayHost(o Options) (relayHost, error) {
	switch o.Relay {
	case RelayTonevault:
		return newTonevaultHost(o)
	case RelayBare:
		return &bareHost{}, nil
	case RelayBatched:
		return &batchedHost{}, nil
	case RelayRtpengine:
		return newRtpengineHost(o)
	}
	return nil, fmt.Errorf("unknown relay %q", o.Relay)
}

// relayConfig is the relay the load runs against: defaults, with
// kernel-chosen ports so that a load run never collides with a gateway.
func relayConfig(o Options) media.Config {
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax = 0, 0
	cfg.LookAhead = o.LookAhead
	cfg.MediaTimeout = 0
	cfg.IO = o.IO
	cfg.RingScheduling, cfg.RingPriority = o.RingScheduling, o.RingPriority
	return cfg
}

// digitCount is the relay's DigitSink in a load run.
type digitCount struct{ n atomic.Int64 }

func (d *digitCount) Digit(media.Digit) { d.n.Add(1) }

var loadPTs = []media.PayloadType{{PT: 0, Codec: media.PCMU, Name: "PCMU", Rate: 8000}, {PT: 101, Codec: media.TelephoneEvent, Name: "telephone-event", Rate: 8000}}

// tonevaultHost opens one media.Session per call.
type tonevaultHost struct {
	r      *media.Relay
	digits *digitCount
	n      int
	srtp   bool
	// srs, when valid, is where each call's recording fork sends its
	// customer and agent streams (--record).
	srs [2]netip.AddrPort
}

func newTonevaultHost(o Options) (*tonevaultHost, error) {
	h := &tonevaultHost{digits: &digitCount{}, srtp: o.SRTP}
	r, err := media.NewRelay(relayConfig(o), media.Options{Digits: h.digits})
	if err != nil {
		return nil, err
	}
	h.r = r
	return h, nil
}

func (h *tonevaultHost) open(cp, pp netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	s, err := h.r.Open(fmt.Sprintf("load-%d", h.n))
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	h.n++
	var cs, ps *media.SRTP
	if h.srtp {
		cs, ps = relaySRTP()
	}
	if err := s.SetRemote(media.Carrier, media.Stream{Addr: cp, PayloadTypes: loadPTs, SRTP: cs}); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	if err := s.SetRemote(media.Platform, media.Stream{Addr: pp, PayloadTypes: loadPTs, SRTP: ps}); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	if h.srs[0].IsValid() {
		rec, err := s.Record()
		if err != nil {
			return netip.AddrPort{}, netip.AddrPort{}, err
		}
		if err := rec.SetRemote(media.Stream{Addr: h.srs[0], Direction: "recvonly"}, media.Stream{Addr: h.srs[1], Direction: "recvonly"}); err != nil {
			return netip.AddrPort{}, netip.AddrPort{}, err
		}
	}
	return s.Local(media.Carrier), s.Local(media.Platform), nil
}

func (h *tonevaultHost) io() string { return h.r.IO() }
func (h *bareHost) io() string      { return "goroutines, no inspection" }
func (h *batchedHost) io() string   { return "recvmmsg/sendmmsg, no inspection" }

func (h *tonevaultHost) close() int64 {
	h.r.Close()
	return h.digits.n.Load()
}

var loopback = netip.MustParseAddr("127.0.0.1")

func listenLoopback() (*net.UDPConn, error) {
	return net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
}

func localPort(c *net.UDPConn) netip.AddrPort {
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// bareHost is the simplest Go UDP relay with the product's socket layout:
// two sockets per call, one goroutine each, read and write, nothing else.
type bareHost struct {
	conns []*net.UDPConn
	wg    sync.WaitGroup
}

func (h *bareHost) open(cp, pp netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	c, err := listenLoopback()
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	p, err := listenLoopback()
	if err != nil {
		c.Close()
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	h.conns = append(h.conns, c, p)
	h.wg.Add(2)
	go h.copy(c, p, pp)
	go h.copy(p, c, cp)
	return localPort(c), localPort(p), nil
}

func (h *bareHost) copy(from, to *net.UDPConn, dst netip.AddrPort) {
	defer h.wg.Done()
	b := make([]byte, 2048)
	for {
		n, _, err := from.ReadFromUDPAddrPort(b)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			to.WriteToUDPAddrPort(b[:n], dst)
		}
	}
}

func (h *bareHost) close() int64 {
	for _, c := range h.conns {
		c.Close()
	}
	h.wg.Wait()
	return 0
}

// batchedHost is the cheapest relay this machine allows: every call's
// packets on one socket per side, moved in batches of up to 64 with
// recvmmsg and sendmmsg. The product cannot work this way (SDP gives each
// call its own port, RFC 3550 §11), so it marks the floor, not a design.
type batchedHost struct {
	once   sync.Once
	c, p   *net.UDPConn
	err    error
	wg     sync.WaitGroup
	cp, pp netip.AddrPort
}

func (h *batchedHost) open(cp, pp netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	h.once.Do(func() {
		// The generator uses one peer socket per side for all calls, so the
		// first call's peers are every call's.
		h.cp, h.pp = cp, pp
		if h.c, h.err = listenLoopback(); h.err != nil {
			return
		}
		if h.p, h.err = listenLoopback(); h.err != nil {
			h.c.Close()
			return
		}
		for _, c := range []*net.UDPConn{h.c, h.p} {
			setBuffers(c)
		}
		h.wg.Add(2)
		go h.copy(h.c, h.p, pp)
		go h.copy(h.p, h.c, cp)
	})
	if h.err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, h.err
	}
	if cp != h.cp || pp != h.pp {
		return netip.AddrPort{}, netip.AddrPort{}, errors.New("the batched relay needs one generator socket per side")
	}
	return localPort(h.c), localPort(h.p), nil
}

func (h *batchedHost) copy(from, to *net.UDPConn, dst netip.AddrPort) {
	defer h.wg.Done()
	in, out := ipv4.NewPacketConn(from), ipv4.NewPacketConn(to)
	addr := net.UDPAddrFromAddrPort(dst)
	rd := make([]ipv4.Message, 64)
	wr := make([]ipv4.Message, 64)
	for i := range rd {
		rd[i].Buffers = [][]byte{make([]byte, 2048)}
		wr[i].Addr = addr
		wr[i].Buffers = make([][]byte, 1)
	}
	for {
		n, err := in.ReadBatch(rd, 0)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		for i := range n {
			wr[i].Buffers[0] = rd[i].Buffers[0][:rd[i].N]
		}
		for b := wr[:n]; len(b) > 0; {
			k, err := out.WriteBatch(b, 0)
			if err != nil {
				break
			}
			b = b[k:]
		}
	}
}

func (h *batchedHost) close() int64 {
	if h.c != nil {
		h.c.Close()
		h.p.Close()
	}
	h.wg.Wait()
	return 0
}

// ServeRelay is 'load --relay-only': the relay side of a load run. It
// first says "io ENGINE", then opens one call per line "carrierPeer
// platformPeer [customerRecorder agentRecorder]" (addresses; the last
// two with --record, tonevault relay only) and answers "toCarrier
// toPlatform"; "run" ends the set-up, and the end of its input ends the
// run, answered by "digits N".
func ServeRelay(o Options, in io.Reader, out io.Writer) error {
	h, err := newRelayHost(o)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	w := bufio.NewWriter(out)
	fmt.Fprintf(w, "io %s\n", h.io())
	w.Flush()
	for sc.Scan() {
		line := sc.Text()
		if line == "run" {
			break
		}
		f := strings.Fields(line)
		if len(f) != 2 && len(f) != 4 {
			h.close()
			return fmt.Errorf("bad line %q", line)
		}
		var addrs [4]netip.AddrPort
		var errs []error
		for i, a := range f {
			var err error
			addrs[i], err = netip.ParseAddrPort(a)
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			h.close()
			return fmt.Errorf("bad line %q: %v", line, err)
		}
		cp, pp := addrs[0], addrs[1]
		if len(f) == 4 {
			tv, ok := h.(*tonevaultHost)
			if !ok {
				h.close()
				return fmt.Errorf("bad line %q: only the tonevault relay records", line)
			}
			tv.srs = [2]netip.AddrPort{addrs[2], addrs[3]}
		}
		c, p, err := h.open(cp, pp)
		if err != nil {
			h.close()
			return err
		}
		fmt.Fprintf(w, "%v %v\n", c, p)
		w.Flush()
	}
	io.Copy(io.Discard, in) // until the generator closes stdin: the run is over
	fmt.Fprintf(w, "digits %d\n", h.close())
	return w.Flush()
}

package media

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/dtmf"
)

// Relay owns the port range and every call's media session.
type Relay struct {
	cfg   Config
	log   *zap.Logger
	sink  DigitSink
	fail  func(callID, reason string)
	m     *metrics
	io    ioEngine
	ports *portPool
	// mask is one period of the mask signal, G.711-encoded, indexed by
	// Codec (PCMU, PCMA). Replaced packets take their payload from it.
	mask  [3][]byte
	delay int // look-ahead in samples
	epoch time.Time

	mu       sync.Mutex
	sessions map[*Session]struct{}
	closed   bool
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewRelay checks cfg and starts the relay's timeout watcher.
func NewRelay(cfg Config, opts Options) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("media: register metrics: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	probe, err := dtmf.NewMasker(cfg.maskConfig(), dtmf.PCMU)
	if err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	io, err := newEngine(cfg.IO, cfg.ringSched(), log, m)
	if err != nil {
		return nil, err
	}
	r := &Relay{
		cfg:      cfg,
		log:      log,
		sink:     opts.Digits,
		fail:     opts.FailClosed,
		m:        m,
		io:       io,
		ports:    newPortPool(cfg.BindIP, cfg.PortMin, cfg.PortMax, nil),
		delay:    probe.Delay(),
		epoch:    time.Now(),
		sessions: make(map[*Session]struct{}),
		stop:     make(chan struct{}),
	}
	// Asked at each Open: a relay whose io_uring rings have all failed
	// opens sockets for goroutines.
	r.ports.raw = func() bool { return r.io.raw() }
	r.mask[PCMU], r.mask[PCMA] = maskTables(cfg)
	if cfg.MediaTimeout > 0 {
		r.wg.Add(1)
		go r.watch()
	}
	return r, nil
}

// maskTables encodes one period of the mask signal: 20 ms for the default
// 1850 Hz beep (it repeats every 160 samples), one second for noise.
func maskTables(cfg Config) (ulaw, alaw []byte) {
	mc := cfg.maskConfig()
	period := dtmf.SampleRate
	if cfg.MaskMode == dtmf.MaskTone {
		// Whole-hertz beep: the period divides the rate.
		period = dtmf.SampleRate / gcd(dtmf.DefaultMaskHz, dtmf.SampleRate)
	}
	lin := make([]int16, period)
	dtmf.FillMask(lin, dtmf.SampleRate, 0, mc)
	ulaw, alaw = make([]byte, period), make([]byte, period)
	for i, v := range lin {
		ulaw[i] = encodeUlaw(v)
		alaw[i] = encodeAlaw(v)
	}
	return ulaw, alaw
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Delay is the look-ahead in samples: what the relay adds to the carrier
// audio's latency toward the platform while masking.
func (r *Relay) Delay() int { return r.delay }

// Open allocates an RTP/RTCP port pair on each leg for a call and starts
// relaying. Both pairs or neither: an exhausted range is ErrPortsExhausted.
func (r *Relay) Open(callID string) (*Session, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	cp, err := r.ports.get()
	if err != nil {
		return nil, err
	}
	pp, err := r.ports.get()
	if err != nil {
		r.ports.put(cp)
		return nil, err
	}
	s := newSession(r, callID, cp, pp)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		s.Close()
		return nil, ErrClosed
	}
	r.sessions[s] = struct{}{}
	r.mu.Unlock()
	r.m.active.Inc()
	s.start()
	r.log.Debug("media session opened", zap.String("call_id", callID),
		zap.Stringer("carrier", s.Local(Carrier)), zap.Stringer("platform", s.Local(Platform)))
	return s, nil
}

// Close closes every session and stops the relay.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	all := make([]*Session, 0, len(r.sessions))
	for s := range r.sessions {
		all = append(all, s)
	}
	r.mu.Unlock()
	for _, s := range all {
		s.Close()
	}
	r.wg.Wait()
	r.io.close()
	return nil
}

// IO says how the relay moves packets: IOUring or IOGoroutines.
func (r *Relay) IO() string { return r.io.name() }

func (r *Relay) forget(s *Session) {
	r.mu.Lock()
	delete(r.sessions, s)
	r.mu.Unlock()
	r.m.active.Dec()
}

// nanos is the relay's monotonic clock, for atomics.
func (r *Relay) nanos(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

// watch ends sessions whose media stopped.
func (r *Relay) watch() {
	defer r.wg.Done()
	tick := min(max(r.cfg.MediaTimeout/4, 5*time.Millisecond), time.Second)
	t := time.NewTicker(tick)
	defer t.Stop()
	var batch []*Session
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			batch = batch[:0]
			r.mu.Lock()
			for s := range r.sessions {
				batch = append(batch, s)
			}
			r.mu.Unlock()
			for _, s := range batch {
				s.checkTimeoutSafe(now)
			}
		}
	}
}

// CodecByName maps an SDP encoding name and clock rate (a=rtpmap) to the
// codecs the relay knows. Rate 0 means not given.
func CodecByName(name string, rate int) Codec {
	if rate != 0 && rate != dtmf.SampleRate {
		return CodecUnknown
	}
	switch strings.ToUpper(name) {
	case "PCMU":
		return PCMU
	case "PCMA":
		return PCMA
	case "TELEPHONE-EVENT":
		return TelephoneEvent
	case "CN":
		return ComfortNoise
	}
	return CodecUnknown
}

// codecOf resolves one signalled payload type: the Codec the SIP layer set,
// else the name, else the RFC 3551 static assignment.
func codecOf(p PayloadType) Codec {
	if p.Codec != CodecUnknown {
		return p.Codec
	}
	if p.Name != "" {
		return CodecByName(p.Name, p.Rate)
	}
	switch p.PT {
	case 0:
		return PCMU
	case 8:
		return PCMA
	case 13:
		return ComfortNoise
	}
	return CodecUnknown
}

func (c Codec) String() string {
	switch c {
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	case TelephoneEvent:
		return "telephone-event"
	case ComfortNoise:
		return "CN"
	}
	return "unknown"
}

func (l Leg) String() string {
	switch l {
	case Carrier:
		return "carrier"
	case Platform:
		return "platform"
	}
	return fmt.Sprintf("Leg(%d)", uint8(l))
}

// unmap normalises an address so that IPv4 peers compare equal however
// the socket reported them.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/sip/media"
)

func init() {
	register(command{name: "load", summary: "load-test the RTP media relay on loopback and report its CPU, loss and latency", run: loadCmd})
}

const loadUsage = `Usage: tonevault load [options]

Run CALLS concurrent calls' worth of G.711 RTP both ways (50 packets/s per
direction per call) through a media relay on 127.0.0.1 and report the
relay's CPU time per packet, loss and added latency.

The relay runs in a child process (this binary, 'load --relay-only'), so
its CPU time is read from /proc/PID/stat apart from the generator's. Each
packet carries its index and send time in the payload; the receiver finds
them again after the relay's look-ahead shifted the audio, so latency is
measured on the wire, not from RTP timestamps.

Options:
  --calls N           concurrent calls (default 100)
  --duration D        how long to send (default 10s), after a 1s warm-up
  --digits-every D    every D, every tenth call presses a digit in-band
                      (default 5s; 0: none)
  --lookahead D       the masker's look-ahead (default 30ms)
  --in-process        run the relay in this process (no CPU split)
  --help              show this help
`

type loadOpts struct {
	calls       int
	duration    time.Duration
	digitsEvery time.Duration
	lookahead   time.Duration
	inProcess   bool
}

func loadCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var o loadOpts
	fs.IntVar(&o.calls, "calls", 100, "")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "")
	fs.DurationVar(&o.digitsEvery, "digits-every", 5*time.Second, "")
	fs.DurationVar(&o.lookahead, "lookahead", dtmf.DefaultLookAhead, "")
	fs.BoolVar(&o.inProcess, "in-process", false, "")
	relayOnly := fs.Bool("relay-only", false, "")
	help := fs.Bool("help", false, "")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "tonevault load: %v\n\n%s", err, loadUsage)
		return 2
	}
	if *help {
		fmt.Fprint(stdout, loadUsage)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tonevault load: unexpected argument %q\n\n%s", fs.Arg(0), loadUsage)
		return 2
	}
	if o.calls < 1 || o.calls > 20000 {
		fmt.Fprintf(stderr, "tonevault load: --calls %d out of range 1-20000\n", o.calls)
		return 2
	}
	if o.duration <= 0 || o.digitsEvery < 0 {
		fmt.Fprintln(stderr, "tonevault load: --duration must be positive and --digits-every not negative")
		return 2
	}
	if *relayOnly {
		if err := relayChild(o, os.Stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "tonevault load --relay-only: %v\n", err)
			return 1
		}
		return 0
	}
	res, err := runLoad(o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault load: %v\n", err)
		return 1
	}
	res.print(stdout, o)
	return 0
}

// relayConfig is the relay the load runs against: defaults, with
// kernel-chosen ports so that a load run never collides with a gateway.
func relayConfig(o loadOpts) media.Config {
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax = 0, 0
	cfg.LookAhead = o.lookahead
	cfg.MediaTimeout = 0
	return cfg
}

// digitCount is the relay's DigitSink in a load run.
type digitCount struct{ n atomic.Int64 }

func (d *digitCount) Digit(media.Digit) { d.n.Add(1) }

var loadPTs = []media.PayloadType{{PT: 0, Codec: media.PCMU, Name: "PCMU", Rate: 8000}, {PT: 101, Codec: media.TelephoneEvent, Name: "telephone-event", Rate: 8000}}

// relayHost opens one session per line "carrierPeerPort platformPeerPort"
// and answers "carrierLocalPort platformLocalPort".
type relayHost struct {
	r      *media.Relay
	digits *digitCount
	ss     []*media.Session
}

func newRelayHost(o loadOpts) (*relayHost, error) {
	h := &relayHost{digits: &digitCount{}}
	r, err := media.NewRelay(relayConfig(o), media.Options{Digits: h.digits})
	if err != nil {
		return nil, err
	}
	h.r = r
	return h, nil
}

func (h *relayHost) open(cp, pp netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	s, err := h.r.Open(fmt.Sprintf("load-%d", len(h.ss)))
	if err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	h.ss = append(h.ss, s)
	if err := s.SetRemote(media.Carrier, media.Stream{Addr: cp, PayloadTypes: loadPTs}); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	if err := s.SetRemote(media.Platform, media.Stream{Addr: pp, PayloadTypes: loadPTs}); err != nil {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	return s.Local(media.Carrier), s.Local(media.Platform), nil
}

func (h *relayHost) close() int64 {
	h.r.Close()
	return h.digits.n.Load()
}

// relayChild is 'load --relay-only': the relay side of a load run.
func relayChild(o loadOpts, in io.Reader, out io.Writer) error {
	h, err := newRelayHost(o)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(in)
	w := bufio.NewWriter(out)
	lo := netip.MustParseAddr("127.0.0.1")
	for sc.Scan() {
		line := sc.Text()
		if line == "run" {
			break
		}
		var a, b uint16
		if _, err := fmt.Sscan(line, &a, &b); err != nil {
			return fmt.Errorf("bad line %q", line)
		}
		c, p, err := h.open(netip.AddrPortFrom(lo, a), netip.AddrPortFrom(lo, b))
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d %d\n", c.Port(), p.Port())
		w.Flush()
	}
	io.Copy(io.Discard, in) // until the generator closes stdin: the run is over
	fmt.Fprintf(w, "digits %d\n", h.close())
	return w.Flush()
}

// loadCall is one call's two peers: the customer and the agent side.
type loadCall struct {
	carrier, platform *net.UDPConn
	toCarrier         netip.AddrPort // relay's carrier-leg socket
	toPlatform        netip.AddrPort
	seq               uint16
	digits            bool // this call presses digits
}

// stamp is written into each payload: a magic byte, the packet index
// (24 bits) and the send time in µs since the run started.
const (
	stampLen   = 8
	stampMagic = 0xA5
	ptime      = 160 // samples per packet
)

type loadResult struct {
	sent, recv       [2]int64 // [0] carrier→platform, [1] platform→carrier
	lat              [2]*latHist
	expectedLat      time.Duration
	relayCPU         time.Duration
	genCPU           time.Duration
	cpuWindowPackets int64
	digitsSent       int64
	digitsSeen       int64
	wall             time.Duration
	cpuOK            bool
}

// latHist is a lock-free latency histogram with 10 µs buckets up to 2 s.
type latHist struct{ b [200000]atomic.Int64 }

func (h *latHist) add(d time.Duration) {
	i := int(d / (10 * time.Microsecond))
	h.b[min(max(i, 0), len(h.b)-1)].Add(1)
}

func (h *latHist) quantile(q float64) (time.Duration, int64) {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0, 0
	}
	want := int64(q*float64(total-1)) + 1
	var acc int64
	for i := range h.b {
		if acc += h.b[i].Load(); acc >= want {
			return time.Duration(i) * 10 * time.Microsecond, total
		}
	}
	return 0, total
}

func runLoad(o loadOpts, logw io.Writer) (*loadResult, error) {
	res := &loadResult{lat: [2]*latHist{{}, {}}}
	delay := int(o.lookahead.Seconds()*dtmf.SampleRate + 0.5)
	// Stamp position q in the packet such that after the delay it still
	// lies inside one packet: output offset (q+delay) mod 160.
	q := 0
	if delay%ptime > ptime-stampLen {
		q = ptime - delay%ptime
	}
	outOff := (q + delay) % ptime
	res.expectedLat = time.Duration((q+delay)/ptime) * 20 * time.Millisecond

	calls := make([]*loadCall, o.calls)
	lo := netip.MustParseAddr("127.0.0.1")
	for i := range calls {
		c := &loadCall{digits: i%10 == 0}
		var err error
		if c.carrier, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0))); err != nil {
			return nil, err
		}
		if c.platform, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0))); err != nil {
			return nil, err
		}
		calls[i] = c
	}
	defer func() {
		for _, c := range calls {
			c.carrier.Close()
			c.platform.Close()
		}
	}()
	port := func(c *net.UDPConn) uint16 { return c.LocalAddr().(*net.UDPAddr).AddrPort().Port() }

	// Start the relay and open the sessions.
	var childPID int
	var finish func() (int64, error)
	if o.inProcess {
		h, err := newRelayHost(o)
		if err != nil {
			return nil, err
		}
		for _, c := range calls {
			cl, pl, err := h.open(netip.AddrPortFrom(lo, port(c.carrier)), netip.AddrPortFrom(lo, port(c.platform)))
			if err != nil {
				h.close()
				return nil, err
			}
			c.toCarrier, c.toPlatform = cl, pl
		}
		finish = func() (int64, error) { return h.close(), nil }
	} else {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(exe, "load", "--relay-only", "--calls", strconv.Itoa(o.calls), "--lookahead", o.lookahead.String())
		cmd.Stderr = logw
		stdin, _ := cmd.StdinPipe()
		stdoutP, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		childPID = cmd.Process.Pid
		rd := bufio.NewReader(stdoutP)
		for _, c := range calls {
			fmt.Fprintf(stdin, "%d %d\n", port(c.carrier), port(c.platform))
			line, err := rd.ReadString('\n')
			if err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return nil, fmt.Errorf("relay child: %v", err)
			}
			var a, b uint16
			if _, err := fmt.Sscan(line, &a, &b); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return nil, fmt.Errorf("relay child said %q", strings.TrimSpace(line))
			}
			c.toCarrier, c.toPlatform = netip.AddrPortFrom(lo, a), netip.AddrPortFrom(lo, b)
		}
		fmt.Fprintln(stdin, "run")
		finish = func() (int64, error) {
			stdin.Close()
			line, err := rd.ReadString('\n')
			cmd.Wait()
			var n int64
			if _, serr := fmt.Sscanf(line, "digits %d", &n); serr != nil {
				return 0, fmt.Errorf("relay child ended with %q: %v", strings.TrimSpace(line), err)
			}
			return n, nil
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	// Receivers: the platform peer gets masked carrier audio, the carrier
	// peer gets platform audio unchanged.
	for _, c := range calls {
		wg.Add(2)
		go func() { defer wg.Done(); receive(c.platform, outOff, start, &res.recv[0], res.lat[0]) }()
		go func() { defer wg.Done(); receive(c.carrier, 0, start, &res.recv[1], res.lat[1]) }()
	}

	// Senders: a few goroutines, each ticking every 20 ms for its share.
	warm := time.Second
	stopAt := start.Add(warm + o.duration)
	var cpu0, cpu1 time.Duration
	var gen0, gen1 time.Duration
	var sentAtStart [2]int64
	var mark sync.Once
	nsend := 4
	var swg sync.WaitGroup
	tone := toneBytes()
	for g := range nsend {
		swg.Add(1)
		go func() {
			defer swg.Done()
			buf := make([]byte, 12+ptime)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for k := 0; ; k++ {
				now := <-tick.C
				if now.After(stopAt) {
					return
				}
				if g == 0 && now.Sub(start) >= warm {
					mark.Do(func() {
						cpu0, res.cpuOK = procCPU(childPID)
						gen0 = selfCPU()
						sentAtStart = [2]int64{atomic.LoadInt64(&res.sent[0]), atomic.LoadInt64(&res.sent[1])}
					})
				}
				// Digit: 100 ms of tone every digitsEvery in digit calls.
				toneIdx := -1
				if o.digitsEvery > 0 {
					phase := now.Sub(start) % o.digitsEvery
					// Presses start after the masker's initial fill and end
					// well before the run does, so each can be reported.
					if since := now.Sub(start); since > 500*time.Millisecond && phase < 100*time.Millisecond && now.Add(300*time.Millisecond-phase).Before(stopAt) {
						toneIdx = int(phase / (20 * time.Millisecond))
					}
					if toneIdx == 0 && g == 0 {
						for _, c := range calls {
							if c.digits {
								atomic.AddInt64(&res.digitsSent, 1)
							}
						}
					}
				}
				for i := g; i < len(calls); i += nsend {
					c := calls[i]
					pay := buf[12:]
					if c.digits && toneIdx >= 0 {
						copy(pay, tone[toneIdx*ptime:])
					} else {
						for j := range pay {
							pay[j] = 0xFE // µ-law near silence
						}
					}
					us := uint32(time.Since(start) / time.Microsecond)
					putLoadRTP(buf, c.seq, 0x1000+uint32(i))
					if !(c.digits && toneIdx >= 0) {
						// Not in a tone: a stamp would be a loud click in it.
						putStamp(pay[q:], c.seq, us)
					}
					c.carrier.WriteToUDPAddrPort(buf, c.toCarrier)
					putStamp(pay[0:], c.seq, us)
					c.platform.WriteToUDPAddrPort(buf, c.toPlatform)
					atomic.AddInt64(&res.sent[0], 1)
					atomic.AddInt64(&res.sent[1], 1)
					c.seq++
				}
			}
		}()
	}
	swg.Wait()
	cpu1, _ = procCPU(childPID)
	gen1 = selfCPU()
	sentInWindow := res.sent[0] + res.sent[1] - sentAtStart[0] - sentAtStart[1]
	time.Sleep(500 * time.Millisecond) // let the last packets land
	res.wall = time.Since(start)
	res.relayCPU, res.genCPU, res.cpuWindowPackets = cpu1-cpu0, gen1-gen0, sentInWindow
	for _, c := range calls {
		c.carrier.Close()
		c.platform.Close()
	}
	wg.Wait()
	n, err := finish()
	if err != nil {
		return nil, err
	}
	res.digitsSeen = n
	return res, nil
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

// receive counts packets on c and measures each stamp found at off.
func receive(c *net.UDPConn, off int, start time.Time, count *int64, h *latHist) {
	buf := make([]byte, 2048)
	for {
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := time.Since(start)
		atomic.AddInt64(count, 1)
		if n < 12+off+stampLen {
			continue
		}
		s := buf[12+off:]
		if s[0] != stampMagic || s[1] != 0 {
			continue // masked or the initial fill
		}
		sent := time.Duration(binary.BigEndian.Uint32(s[4:])) * time.Microsecond
		h.add(now - sent)
	}
}

// toneBytes is 100 ms of the digit 5 at -10 dBm0 per tone, µ-law.
func toneBytes() []byte {
	pcm := make([]int16, 800)
	dtmf.AddTone(pcm, dtmf.SampleRate, 0, '5', -10, -10)
	b := make([]byte, len(pcm))
	for i, v := range pcm {
		b[i] = g711.EncodeUlawFrame(v)
	}
	return b
}

// procCPU reads a process's user+system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, true
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r *loadResult) print(w io.Writer, o loadOpts) {
	fmt.Fprintf(w, "tonevault load: %d calls, %v (+1s warm-up), look-ahead %v, digits every %v in every 10th call\n\n", o.calls, o.duration, o.lookahead, o.digitsEvery)
	tw := func(k, v string) { fmt.Fprintf(w, "  %-34s %s\n", k, v) }
	rate := float64(r.cpuWindowPackets) / o.duration.Seconds()
	tw("packets sent (both directions)", fmt.Sprintf("%d (%.0f/s in the window)", r.sent[0]+r.sent[1], rate))
	if r.cpuOK && r.cpuWindowPackets > 0 {
		tw("relay CPU per packet", fmt.Sprintf("%.2f µs (%v CPU for %d packets; %.0f%% of one core)",
			float64(r.relayCPU.Microseconds())/float64(r.cpuWindowPackets), r.relayCPU.Round(time.Millisecond), r.cpuWindowPackets,
			100*r.relayCPU.Seconds()/o.duration.Seconds()))
	} else {
		tw("relay CPU per packet", "n/a (relay in process)")
	}
	tw("generator CPU per packet", fmt.Sprintf("%.2f µs", float64(r.genCPU.Microseconds())/float64(max(r.cpuWindowPackets, 1))))
	names := [2]string{"carrier→platform (masked)", "platform→carrier"}
	for d := range 2 {
		loss := 0.0
		if r.sent[d] > 0 {
			loss = 100 * (1 - float64(r.recv[d])/float64(r.sent[d]))
		}
		p50, n := r.lat[d].quantile(0.5)
		p99, _ := r.lat[d].quantile(0.99)
		tw(names[d]+" loss", fmt.Sprintf("%.3f%% (%d of %d received)", loss, r.recv[d], r.sent[d]))
		tw(names[d]+" latency p50/p99", fmt.Sprintf("%v / %v (%d stamps)", p50, p99, n))
	}
	tw("expected look-ahead quantisation", fmt.Sprintf("%v (whole packets the stamped sample waits; the relay's own cost is latency minus this)", r.expectedLat))
	tw("digits pressed / reported", fmt.Sprintf("%d / %d", r.digitsSent, r.digitsSeen))
}

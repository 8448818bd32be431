package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/zaf/g711"
	"golang.org/x/net/ipv4"

	"github.com/tonevault/tonevault/dtmf"
)

// Options are one load run.
type Options struct {
	Calls       int           // concurrent calls, 1 to 20000
	Duration    time.Duration // how long to send, after a 1 s warm-up
	DigitsEvery time.Duration // every tenth call presses a digit in-band this often; 0: never
	LookAhead   time.Duration // the masker's look-ahead
	Relay       string        // one of RelayKinds; "" is RelayTonevault
	IO          string        // the tonevault relay's engine (media.io): auto, io_uring or goroutines
	// RingScheduling and RingPriority are the rings' threads' scheduling
	// (media.ring_scheduling, media.ring_priority).
	RingScheduling string
	RingPriority   int
	// Pin puts the generator on the first CPU this process may use and
	// the relay's process (the child, or rtpengine) on the others, so
	// that neither waits behind the other's threads for a CPU.
	Pin bool
	// SRTP puts both legs of every call under SDES-SRTP
	// (AES_CM_128_HMAC_SHA1_80): the relay authenticates and decrypts
	// each packet, masks, and protects it again with the other leg's key.
	SRTP bool
	// Record opens a SIPREC recording fork on every call (tonevault
	// relay only): the relay also sends each call's customer and agent
	// streams to two sockets of the generator, which count what arrives.
	Record bool
	// RtpengineProfile is RtpenginePass or RtpengineMask ("" is pass);
	// Rtpengine the daemon's binary ("" is rtpengine on PATH).
	RtpengineProfile, Rtpengine string
	// Child starts the relay in its own process, so that its CPU time is
	// read from /proc apart from the generator's: a command whose standard
	// input and output speak ServeRelay's protocol (the gateway binary
	// runs 'tonevault load --relay-only'). Nil runs the relay in this
	// process, and its CPU is not reported.
	Child func() *exec.Cmd
}

// Validate reports options that cannot run, naming the flag.
func (o Options) Validate() error {
	if o.Calls < 1 || o.Calls > 20000 {
		return fmt.Errorf("--calls %d out of range 1-20000", o.Calls)
	}
	if o.Duration <= 0 || o.DigitsEvery < 0 {
		return errors.New("--duration must be positive and --digits-every not negative")
	}
	if o.Relay != "" && !slices.Contains(RelayKinds, o.Relay) {
		return fmt.Errorf("--relay %q: want one of %s", o.Relay, strings.Join(RelayKinds, ", "))
	}
	if o.SRTP && o.Relay != "" && o.Relay != RelayTonevault {
		return fmt.Errorf("--srtp: only the tonevault relay speaks SRTP, not %s", o.Relay)
	}
	if o.Record && o.Relay != "" && o.Relay != RelayTonevault {
		return fmt.Errorf("--record: only the tonevault relay records, not %s", o.Relay)
	}
	if p := o.RtpengineProfile; p != "" && p != RtpenginePass && p != RtpengineMask {
		return fmt.Errorf("--rtpengine-profile %q: want %s or %s", p, RtpenginePass, RtpengineMask)
	}
	if o.Pin {
		if _, err := pinCPUs(); err != nil {
			return err
		}
	}
	// --io and --lookahead, as the relay will see them.
	return relayConfig(o).Validate()
}

// Result is what a run measured; Print writes it for people.
type Result struct {
	sent, recv       [2]atomic.Int64 // [0] carrier→platform, [1] platform→carrier
	lat              [2]*latHist     // stamp: the audio's delay, look-ahead included
	own              [2]*latHist     // packet: the relay's own delay
	expectedLat      time.Duration
	relayCPU         time.Duration
	genCPU           time.Duration
	cpuWindowPackets int64
	digitsSent       atomic.Int64
	srtpFail         atomic.Int64    // relayed packets the generator could not authenticate
	recorded         [2]atomic.Int64 // --record: packets at the recorder's sockets, customer and agent
	recordedStamped  [2]atomic.Int64 // of which plain RTP with the generator's stamp readable
	digitsSeen       int64
	maxLag           time.Duration // how late the sender's worst slot went out
	pinned           [2][]int      // --pin: the generator's CPUs, the relay's
	sched            schedWindow   // waiting for a CPU in the window (sched.go)
	cpuOK            bool
	kernelStamps     bool   // latency from SO_TIMESTAMPNS, not the receiver's clock
	io               string // the engine the relay ran on
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

// Run runs the load; the relay child's standard error goes to logw.
func Run(o Options, logw io.Writer) (*Result, error) {
	if o.Relay == "" {
		o.Relay = RelayTonevault
	}
	res := &Result{lat: [2]*latHist{{}, {}}, own: [2]*latHist{{}, {}}}
	g := &generator{o: o, res: res, tone: toneBytes()}
	if o.SRTP {
		g.encC, g.encP = newGenCrypto(0), newGenCrypto(2)
	}
	delay := 0
	if o.Relay == RelayTonevault {
		delay = int(o.LookAhead.Seconds()*dtmf.SampleRate + 0.5)
	}
	if o.Relay == RelayRtpengine {
		// rtpengine is started here and is the process measured: the
		// relay child would only add a process between them.
		o.Child = nil
	}
	// Stamp position q in the packet such that after the delay it still
	// lies inside one packet: output offset (q+delay) mod 160.
	if delay%ptime > ptime-stampLen {
		g.q = ptime - delay%ptime
	}
	g.outOff = (g.q + delay) % ptime
	res.expectedLat = time.Duration((g.q+delay)/ptime) * 20 * time.Millisecond
	if o.Relay == RelayRtpengine && o.RtpengineProfile == RtpengineMask {
		res.expectedLat = rtpengineDelay
	}

	var err error
	if g.carrier, err = newGenSide(); err != nil {
		return nil, err
	}
	defer g.carrier.close()
	if g.platform, err = newGenSide(); err != nil {
		return nil, err
	}
	defer g.platform.close()
	res.kernelStamps = g.carrier.kts[0] && g.platform.kts[0]
	var srs [2]netip.AddrPort // --record: the recorder's sockets, customer and agent
	if o.Record {
		if g.srs, err = newGenSide(); err != nil {
			return nil, err
		}
		defer g.srs.close()
		srs = [2]netip.AddrPort{localPort(g.srs.conns[0]), localPort(g.srs.conns[1])}
	}
	g.calls = make([]*loadCall, o.Calls)
	for i := range g.calls {
		g.calls[i] = newLoadCall(i)
	}
	peers := func(c *loadCall) (netip.AddrPort, netip.AddrPort) {
		return localPort(g.carrier.conns[c.side]), localPort(g.platform.conns[c.side])
	}
	if o.Relay == RelayBatched {
		// One peer per side for every call: see batchedHost.
		peers = func(*loadCall) (netip.AddrPort, netip.AddrPort) {
			return localPort(g.carrier.conns[0]), localPort(g.platform.conns[0])
		}
		for _, c := range g.calls {
			c.side = 0
		}
	}

	// Start the relay and open the calls.
	var childPID int
	var finish func() (int64, error)
	if o.Child == nil {
		h, err := newRelayHost(o)
		if err != nil {
			return nil, err
		}
		if tv, ok := h.(*tonevaultHost); ok {
			tv.srs = srs
		}
		for _, c := range g.calls {
			cl, pl, err := h.open(peers(c))
			if err != nil {
				h.close()
				return nil, err
			}
			c.setRelay(cl, pl)
		}
		res.io = h.io()
		if p, ok := h.(interface{ pid() int }); ok {
			childPID = p.pid() // a daemon of its own: rtpengine
		}
		finish = func() (int64, error) { return h.close(), nil }
	} else {
		cmd := o.Child()
		cmd.Stderr = logw
		stdin, _ := cmd.StdinPipe()
		stdoutP, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		childPID = cmd.Process.Pid
		fail := func(err error) (*Result, error) {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, err
		}
		rd := bufio.NewReader(stdoutP)
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "io ") {
			return fail(fmt.Errorf("relay child said %q: %v", strings.TrimSpace(line), err))
		}
		res.io = strings.TrimSpace(strings.TrimPrefix(line, "io "))
		for _, c := range g.calls {
			cp, pp := peers(c)
			if o.Record {
				fmt.Fprintf(stdin, "%v %v %v %v\n", cp, pp, srs[0], srs[1])
			} else {
				fmt.Fprintf(stdin, "%v %v\n", cp, pp)
			}
			line, err := rd.ReadString('\n')
			if err != nil {
				return fail(fmt.Errorf("relay child: %v", err))
			}
			var a, b string
			if _, err := fmt.Sscan(line, &a, &b); err != nil {
				return fail(fmt.Errorf("relay child said %q", strings.TrimSpace(line)))
			}
			cl, err1 := netip.ParseAddrPort(a)
			pl, err2 := netip.ParseAddrPort(b)
			if err := errors.Join(err1, err2); err != nil {
				return fail(fmt.Errorf("relay child said %q: %v", strings.TrimSpace(line), err))
			}
			c.setRelay(cl, pl)
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

	if o.Pin {
		if err := res.pin(childPID); err != nil {
			finish()
			return nil, err
		}
	}

	start := time.Now()
	g.startNanos = start.UnixNano()
	// Receivers: the platform side gets masked carrier audio, the carrier
	// side gets platform audio unchanged.
	for i := range genSockets {
		g.wg.Add(2)
		var decP, decC *genCrypto
		if o.SRTP {
			decP, decC = newGenCrypto(3), newGenCrypto(1)
		}
		go g.receive(g.platform.pcs[i], g.platform.kts[i], g.outOff, &res.recv[0], res.lat[0], res.own[0], decP)
		go g.receive(g.carrier.pcs[i], g.carrier.kts[i], 0, &res.recv[1], res.lat[1], res.own[1], decC)
	}
	if o.Record {
		// The recorder: plain RTP, stamps where the platform and the
		// carrier find them.
		g.wg.Add(2)
		go g.record(g.srs.pcs[0], g.outOff, &res.recorded[0], &res.recordedStamped[0])
		go g.record(g.srs.pcs[1], 0, &res.recorded[1], &res.recordedStamped[1])
	}

	// The sender: one goroutine on a 1 ms schedule. A late wake-up sends
	// every slot that came due since, so the rate holds even when the
	// scheduler is behind; how far behind it fell is reported.
	const warm = time.Second
	total := int((warm + o.Duration) / time.Millisecond)
	var cm, pm [genSockets][]ipv4.Message
	for i := range genSockets {
		cm[i] = make([]ipv4.Message, 0, o.Calls/slots+1)
		pm[i] = make([]ipv4.Message, 0, o.Calls/slots+1)
	}
	var cpu0, gen0 time.Duration
	var sched0 schedSample
	var sentAtStart int64
	for k := 0; k < total; k++ {
		due := start.Add(time.Duration(k) * time.Millisecond)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		} else if -wait > res.maxLag {
			res.maxLag = -wait
		}
		if k == int(warm/time.Millisecond) {
			cpu0, res.cpuOK = procCPU(childPID)
			gen0 = selfCPU()
			sched0 = takeSched(childPID)
			sentAtStart = res.sent[0].Load() + res.sent[1].Load()
		}
		g.sendSlot(k, &cm, &pm)
	}
	cpu1, _ := procCPU(childPID)
	gen1 := selfCPU()
	res.sched = windowOf(sched0, takeSched(childPID))
	res.cpuWindowPackets = res.sent[0].Load() + res.sent[1].Load() - sentAtStart
	time.Sleep(500 * time.Millisecond) // let the last packets land
	res.relayCPU, res.genCPU = cpu1-cpu0, gen1-gen0
	g.carrier.close()
	g.platform.close()
	if g.srs != nil {
		g.srs.close()
	}
	g.wg.Wait()
	n, err := finish()
	if err != nil {
		return nil, err
	}
	res.digitsSeen = n
	return res, nil
}

// pin puts this process (the generator) on its first CPU and the relay
// on the rest.
func (r *Result) pin(relayPID int) error {
	if relayPID == 0 {
		return errors.New("--pin: the relay runs in this process (--in-process); it needs one of its own")
	}
	cpus, err := pinCPUs()
	if err != nil {
		return err
	}
	r.pinned = [2][]int{cpus[:1], cpus[1:]}
	if err := pinProcess(relayPID, r.pinned[1]); err != nil {
		return fmt.Errorf("--pin: the relay: %w", err)
	}
	if err := pinProcess(os.Getpid(), r.pinned[0]); err != nil {
		return fmt.Errorf("--pin: the generator: %w", err)
	}
	return nil
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

// Print writes the result as a table for people.
func (r *Result) Print(w io.Writer, o Options) {
	relay := o.Relay
	if relay == "" {
		relay = RelayTonevault
	}
	fmt.Fprintf(w, "tonevault load: %s relay, %d calls, %v (+1s warm-up)", relay, o.Calls, o.Duration)
	if o.SRTP {
		fmt.Fprint(w, ", SRTP (AES_CM_128_HMAC_SHA1_80) on both legs")
	}
	if relay == RelayTonevault {
		fmt.Fprintf(w, " on %s, look-ahead %v, digits every %v in every 10th call", r.io, o.LookAhead, o.DigitsEvery)
	}
	if relay == RelayRtpengine {
		fmt.Fprintf(w, ": %s", r.io)
	}
	if o.Record {
		fmt.Fprint(w, ", a SIPREC recording fork on every call")
	}
	if r.pinned[0] != nil {
		fmt.Fprintf(w, ", the generator on CPU %v and the relay on CPU %v", r.pinned[0], r.pinned[1])
	}
	fmt.Fprint(w, "\n\n")
	tw := func(k, v string) { fmt.Fprintf(w, "  %-34s %s\n", k, v) }
	sent := [2]int64{r.sent[0].Load(), r.sent[1].Load()}
	recv := [2]int64{r.recv[0].Load(), r.recv[1].Load()}
	rate := float64(r.cpuWindowPackets) / o.Duration.Seconds()
	tw("packets sent (both directions)", fmt.Sprintf("%d (%.0f/s in the window)", sent[0]+sent[1], rate))
	if r.cpuOK && r.cpuWindowPackets > 0 {
		tw("relay CPU per packet", fmt.Sprintf("%.2f µs (%v CPU for %d packets; %.0f%% of one core)",
			float64(r.relayCPU.Microseconds())/float64(r.cpuWindowPackets), r.relayCPU.Round(time.Millisecond), r.cpuWindowPackets,
			100*r.relayCPU.Seconds()/o.Duration.Seconds()))
		tw("relay CPU per call", fmt.Sprintf("%.3f%% of one core (%.2f ms CPU per second of call)",
			100*r.relayCPU.Seconds()/o.Duration.Seconds()/float64(o.Calls),
			1000*r.relayCPU.Seconds()/o.Duration.Seconds()/float64(o.Calls)))
	} else {
		tw("relay CPU per packet", "n/a (relay in process)")
	}
	tw("generator CPU per packet", fmt.Sprintf("%.2f µs", float64(r.genCPU.Microseconds())/float64(max(r.cpuWindowPackets, 1))))
	cpu := r.relayCPU
	if !r.cpuOK {
		cpu = 0
	}
	tw("time waiting for a CPU", r.sched.text(cpu)+" (runnable, not running; steal: the hypervisor's)")
	tw("sender's worst lag", fmt.Sprintf("%v (how late its latest 1 ms slot went out)", r.maxLag.Round(10*time.Microsecond)))
	names := [2]string{"carrier→platform (masked)", "platform→carrier"}
	if relay != RelayTonevault {
		names[0] = "carrier→platform"
	}
	clock := "kernel receive stamps"
	if !r.kernelStamps {
		clock = "the receiver's clock"
	}
	for d := range 2 {
		loss := 0.0
		if sent[d] > 0 {
			loss = 100 * (1 - float64(recv[d])/float64(sent[d]))
		}
		p50, n := r.lat[d].quantile(0.5)
		p99, _ := r.lat[d].quantile(0.99)
		p999, _ := r.lat[d].quantile(0.999)
		tw(names[d]+" loss", fmt.Sprintf("%.3f%% (%d of %d received)", loss, recv[d], sent[d]))
		tw(names[d]+" latency p50/p99/p99.9", fmt.Sprintf("%v / %v / %v (%d stamps, %s)", p50, p99, p999, n, clock))
		if relay == RelayTonevault && d == 0 {
			o50, _ := r.own[d].quantile(0.5)
			o99, _ := r.own[d].quantile(0.99)
			o999, on := r.own[d].quantile(0.999)
			tw("  of which the relay's own", fmt.Sprintf("%v / %v / %v (%d packets: arrival of the packet that releases the audio to its departure)", o50, o99, o999, on))
		}
	}
	if relay == RelayRtpengine && o.RtpengineProfile == RtpengineMask {
		tw("expected delay", fmt.Sprintf("%v (the delay buffer; the relay's own cost is latency minus this)", r.expectedLat))
	}
	if relay == RelayTonevault {
		tw("expected look-ahead quantisation", fmt.Sprintf("%v (whole packets the stamped sample waits; the relay's own cost is latency minus this)", r.expectedLat))
		tw("digits pressed / reported", fmt.Sprintf("%d / %d", r.digitsSent.Load(), r.digitsSeen))
	}
	if o.Record {
		for d, name := range [2]string{"customer", "agent"} {
			tw("recorded "+name+" stream", fmt.Sprintf("%d packets (%d relayed to the %s), %d with the stamp readable in plain RTP",
				r.recorded[d].Load(), recv[d], [2]string{"platform", "carrier"}[d], r.recordedStamped[d].Load()))
		}
	}
	if o.SRTP {
		tw("relayed packets not authenticating", fmt.Sprintf("%d (at the generator)", r.srtpFail.Load()))
	}
}

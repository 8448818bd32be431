// Package webrtcload measures browser agent legs under load, without a
// browser: CALLS concurrent calls through the product's media relay, the
// customer side plain RTP from the load client, the agent side either a
// WebRTC leg (package media/webrtc) to a pion peer per call
// (webrtctest), or, for comparison, a plain RTP peer as a SIP agent
// would be. G.711 both ways, 50 packets/s per direction per call. The
// gateway side (relay and legs) runs in a child process, so that its CPU
// time is read from /proc apart from the load client's; the report says
// CPU per call, loss both ways and the load average. It is what
// `tonevault load-webrtc` runs; BENCHMARKS.md has its figures.
//
// It is a measuring tool: nothing in the serving path imports it. It
// binds loopback only and carries no card data.
package webrtcload

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	pion "github.com/pion/webrtc/v4"
	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/webrtc"
	"github.com/tonevault/tonevault/media/webrtc/webrtctest"
)

// The agent side of each call.
const (
	LegWebRTC = "webrtc" // a WebRTC leg to a pion peer
	LegRTP    = "rtp"    // plain RTP to a UDP socket, as a SIP agent
)

// Options of a run.
type Options struct {
	Calls    int
	Duration time.Duration // measured, after the set-up and a 2 s warm-up
	Leg      string        // LegWebRTC or LegRTP
	IO       string        // the relay's packet engine (media.io)
	// Child starts the gateway side (this binary's load-webrtc --serve);
	// nil runs it in this process (no CPU split).
	Child func() *exec.Cmd
}

// Validate checks the options.
func (o Options) Validate() error {
	switch {
	case o.Calls < 1 || o.Calls > 2000:
		return errors.New("--calls: 1 to 2000")
	case o.Duration < time.Second:
		return errors.New("--duration: at least 1s")
	case o.Leg != LegWebRTC && o.Leg != LegRTP:
		return fmt.Errorf("--leg %q: want %s or %s", o.Leg, LegWebRTC, LegRTP)
	}
	return nil
}

// callRequest is the load client asking the gateway side for a call.
type callRequest struct {
	Carrier  string `json:"carrier"`            // the customer's RTP address
	Platform string `json:"platform,omitempty"` // the agent's, for LegRTP
	Offer    string `json:"offer,omitempty"`    // the peer's offer, for LegWebRTC
}

type callResponse struct {
	Carrier  string `json:"carrier"`  // the relay's customer-side address
	Platform string `json:"platform"` // the relay's agent-side address (LegRTP)
	Answer   string `json:"answer,omitempty"`
}

var pcmu = []media.PayloadType{{PT: 0, Codec: media.PCMU, Name: "PCMU", Rate: 8000}}

// gateway is the side under test: the relay and the agents' legs.
type gateway struct {
	relay *media.Relay
	rtc   *webrtc.Engine
	mu    sync.Mutex
	legs  []*webrtc.Leg
}

func newGateway(io string) (*gateway, error) {
	cfg := media.DefaultConfig()
	cfg.PortMin, cfg.PortMax, cfg.IO = 0, 0, io
	relay, err := media.NewRelay(cfg, media.Options{})
	if err != nil {
		return nil, err
	}
	rtc, err := webrtc.NewEngine(webrtc.DefaultConfig(), cfg.BindIP, webrtc.Options{})
	if err != nil {
		relay.Close()
		return nil, err
	}
	return &gateway{relay: relay, rtc: rtc}, nil
}

func (g *gateway) close() {
	g.mu.Lock()
	for _, l := range g.legs {
		l.Close()
	}
	g.mu.Unlock()
	g.rtc.Close()
	g.relay.Close()
}

// ServeHTTP opens one call per POST.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req callRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	carrier, err := netip.ParseAddrPort(req.Carrier)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s, err := g.relay.Open(fmt.Sprintf("c-load%d", time.Now().UnixNano()%1e9))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := s.SetRemote(media.Carrier, media.Stream{Addr: carrier, PayloadTypes: pcmu}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	res := callResponse{Carrier: s.Local(media.Carrier).String(), Platform: s.Local(media.Platform).String()}
	platform := netip.AddrPort{}
	if req.Offer != "" {
		leg, answer, err := g.rtc.NewLeg([]byte(req.Offer), webrtc.LegParams{Codec: media.PCMU, Relay: s.Local(media.Platform)})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.legs = append(g.legs, leg)
		g.mu.Unlock()
		platform, res.Answer = leg.Addr(), string(answer)
	} else if platform, err = netip.ParseAddrPort(req.Platform); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := s.SetRemote(media.Platform, media.Stream{Addr: platform, PayloadTypes: pcmu}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// Serve is the child: the gateway side on a loopback HTTP port, which
// it prints ("http ADDR"), until in closes.
func Serve(o Options, in io.Reader, out io.Writer) error {
	g, err := newGateway(o.IO)
	if err != nil {
		return err
	}
	defer g.close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintf(out, "http %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, in)
	return nil
}

// Result is a run's account.
type Result struct {
	Calls      int
	Leg        string
	Measured   time.Duration
	GatewayCPU time.Duration // the child's user+system time over Measured (0: in-process)
	Sent       int           // packets each way per call
	// Paced are the packets each way per call sent while measuring: 50
	// a second when the load client keeps up, fewer when it does not.
	Paced               int
	Nominal             time.Duration // Options.Duration
	ToAgent, ToCustomer struct {
		Received, Lost int
	}
	LoadAvg string
}

// Print writes the report.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "%d calls, agent leg %s, %v measured\n", r.Calls, r.Leg, r.Measured.Round(time.Millisecond))
	if r.GatewayCPU > 0 {
		share := r.GatewayCPU.Seconds() / r.Measured.Seconds()
		pkts := float64(r.Calls) * 2 * float64(r.Paced)
		fmt.Fprintf(w, "gateway CPU: %.2f cores; %.2f%% of a core per call; %.1f µs per packet relayed\n",
			share, 100*share/float64(r.Calls), r.GatewayCPU.Seconds()*1e6/pkts)
	}
	if rate := float64(r.Paced) / r.Measured.Seconds(); rate < 49 {
		fmt.Fprintf(w, "the load client did not keep the pace: %.1f packets/s per call each way, not 50 (%v of sending took %v)\n", rate, r.Nominal, r.Measured.Round(time.Millisecond))
	}
	total := r.Sent * r.Calls
	fmt.Fprintf(w, "customer → agent: %d of %d packets, %d lost (%.3f%%)\n", r.ToAgent.Received, total, r.ToAgent.Lost, pct(r.ToAgent.Lost, total))
	fmt.Fprintf(w, "agent → customer: %d of %d packets, %d lost (%.3f%%)\n", r.ToCustomer.Received, total, r.ToCustomer.Lost, pct(r.ToCustomer.Lost, total))
	fmt.Fprintf(w, "load average: %s\n", r.LoadAvg)
}

func pct(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

// call is one call of the load client.
type call struct {
	carrier, platform *net.UDPConn
	relayCarrier      netip.AddrPort
	relayPlatform     netip.AddrPort
	browser           *webrtctest.Browser
	toCustomer        atomic.Int64
	toAgentRTP        atomic.Int64
}

// Run sets the calls up, sends for a warm-up and Duration, and reports.
func Run(o Options, log io.Writer) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	base, pid, stop, err := startGateway(o)
	if err != nil {
		return Result{}, err
	}
	defer stop()
	calls := make([]*call, 0, o.Calls)
	defer func() {
		for _, c := range calls {
			c.carrier.Close()
			if c.platform != nil {
				c.platform.Close()
			}
			if c.browser != nil {
				c.browser.Close()
			}
		}
	}()
	for i := range o.Calls {
		c, err := setUp(base, o.Leg)
		if err != nil {
			return Result{}, fmt.Errorf("call %d: %w", i, err)
		}
		calls = append(calls, c)
		if (i+1)%50 == 0 {
			fmt.Fprintf(log, "%d calls set up\n", i+1)
		}
	}
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() { defer wg.Done(); count(c.carrier, &c.toCustomer) }()
		if c.platform != nil {
			wg.Add(1)
			go func() { defer wg.Done(); count(c.platform, &c.toAgentRTP) }()
		}
	}
	payload := voice()
	const tick = 20 * time.Millisecond
	warm := int(2 * time.Second / tick)
	total := warm + int(o.Duration/tick)
	var cpu0, cpu1 time.Duration
	var measureFrom time.Time
	pkt := make([]byte, 12+len(payload))
	start := time.Now()
	for n := range total {
		if n == warm {
			cpu0, _ = procCPU(pid)
			measureFrom = time.Now()
		}
		for _, c := range calls {
			seq := uint16(n)
			h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(n) * 160, SSRC: 0x10000}
			b, _ := h.MarshalTo(pkt)
			copy(pkt[b:], payload)
			c.carrier.WriteToUDPAddrPort(pkt[:b+len(payload)], c.relayCarrier)
			if c.browser != nil {
				c.browser.Send(seq, payload)
			} else {
				c.platform.WriteToUDPAddrPort(pkt[:b+len(payload)], c.relayPlatform)
			}
		}
		// The 20 ms pace is held against the clock, not the loop's length.
		time.Sleep(time.Until(start.Add(time.Duration(n+1) * tick)))
	}
	measured := time.Since(measureFrom)
	cpu1, _ = procCPU(pid)
	time.Sleep(time.Second) // the last packets and the look-ahead
	res := Result{Calls: o.Calls, Leg: o.Leg, Measured: measured, GatewayCPU: cpu1 - cpu0, Sent: total, Paced: total - warm, Nominal: o.Duration, LoadAvg: loadAvg()}
	for _, c := range calls {
		got := int(c.toAgentRTP.Load())
		if c.browser != nil {
			got, _ = c.browser.Received()
		}
		res.ToAgent.Received += got
		res.ToAgent.Lost += max(0, total-got)
		gotC := int(c.toCustomer.Load())
		res.ToCustomer.Received += gotC
		res.ToCustomer.Lost += max(0, total-gotC)
	}
	for _, c := range calls {
		c.carrier.SetReadDeadline(time.Now())
		if c.platform != nil {
			c.platform.SetReadDeadline(time.Now())
		}
	}
	wg.Wait()
	return res, nil
}

// voice is 20 ms of a 440 Hz tone in PCMU: the masker inspects it as it
// would speech.
func voice() []byte {
	pcm := make([]int16, 160)
	a := dtmf.PeakForDBm0(-20)
	for i := range pcm {
		pcm[i] = int16(a * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	out := make([]byte, 160)
	for i, v := range pcm {
		out[i] = g711.EncodeUlawFrame(v)
	}
	return out
}

func count(c *net.UDPConn, n *atomic.Int64) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		n.Add(1)
	}
}

func listen() (*net.UDPConn, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(1 << 20)
	return c, nil
}

// setUp opens one call on the gateway side and connects its agent.
func setUp(base, leg string) (*call, error) {
	c := &call{}
	var err error
	if c.carrier, err = listen(); err != nil {
		return nil, err
	}
	req := callRequest{Carrier: c.carrier.LocalAddr().String()}
	if leg == LegRTP {
		if c.platform, err = listen(); err != nil {
			return nil, err
		}
		req.Platform = c.platform.LocalAddr().String()
	} else {
		if c.browser, err = webrtctest.New(webrtctest.Options{CountOnly: true}); err != nil {
			return nil, err
		}
		offer, err := c.browser.Offer(false)
		if err != nil {
			return nil, err
		}
		req.Offer = string(offer)
	}
	body, _ := json.Marshal(req)
	r, err := http.Post(base+"/call", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer r.Body.Close()
	if r.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(r.Body)
		return nil, fmt.Errorf("gateway: %s", msg)
	}
	var res callResponse
	if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
		return nil, err
	}
	if c.relayCarrier, err = netip.ParseAddrPort(res.Carrier); err != nil {
		return nil, err
	}
	if c.relayPlatform, err = netip.ParseAddrPort(res.Platform); err != nil {
		return nil, err
	}
	if c.browser != nil {
		if err := c.browser.Answer([]byte(res.Answer)); err != nil {
			return nil, err
		}
		deadline := time.Now().Add(20 * time.Second)
		for c.browser.PC.ConnectionState() != pion.PeerConnectionStateConnected {
			if time.Now().After(deadline) {
				return nil, errors.New("the agent's WebRTC leg did not connect")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return c, nil
}

// startGateway starts the gateway side, in a child or in this process,
// and returns its HTTP base URL and process id (0: this process).
func startGateway(o Options) (base string, pid int, stop func(), err error) {
	if o.Child == nil {
		pr, pw := io.Pipe()
		out := &lineWriter{lines: make(chan string, 1)}
		go Serve(o, pr, out)
		line := <-out.lines
		return "http://" + strings.TrimPrefix(line, "http "), os.Getpid(), func() { pw.Close() }, nil
	}
	cmd := o.Child()
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", 0, nil, err
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		return "", 0, nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return "", 0, nil, err
	}
	stop = func() { in.Close(); cmd.Wait() }
	sc := bufio.NewScanner(outp)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), "http ") {
		stop()
		return "", 0, nil, errors.New("the gateway side did not start")
	}
	return "http://" + strings.TrimPrefix(sc.Text(), "http "), cmd.Process.Pid, stop, nil
}

type lineWriter struct {
	lines chan string
	once  sync.Once
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { w.lines <- strings.TrimSpace(string(p)) })
	return len(p), nil
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck, true
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

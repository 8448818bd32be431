package loadtest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// RelayRtpengine is Debian's rtpengine-daemon in userspace (table=-1),
// started by the run itself on loopback and driven through its ng control
// protocol: the established open-source relay, measured through the same
// generator as ToneVault's.
const RelayRtpengine = "rtpengine"

// The rtpengine profiles (Options.RtpengineProfile).
const (
	// RtpenginePass relays as it came: its plain userspace forwarding.
	RtpenginePass = "pass"
	// RtpengineMask is 'block DTMF' with DTMF-security=silence and a
	// 100 ms delay buffer: the only rtpengine setting that masks in-band
	// digits, since its detector needs the audio held back to replace
	// a tone before it leaves. It puts the call through rtpengine's
	// codec handlers (decode, inspect, encode).
	RtpengineMask = "mask"
)

// rtpengineDelay is the mask profile's delay buffer.
const rtpengineDelay = 100 * time.Millisecond

// rtpenginePorts is the media port range given to the daemon: below the
// kernel's ephemeral range and the gateway's default 20000-29999.
const rtpenginePortMin, rtpenginePortMax = 10000, 19999

// rtpengineHost runs one daemon and opens each call with an offer and an
// answer (and, for the mask profile, a block DTMF).
type rtpengineHost struct {
	profile string
	cmd     *exec.Cmd
	dir     string
	ng      *net.UDPConn
	exited  chan struct{}
	stderr  *tailBuffer
	calls   []string
}

func newRtpengineHost(o Options) (*rtpengineHost, error) {
	bin := o.Rtpengine
	if bin == "" {
		bin = "rtpengine"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("--relay rtpengine: %w (Debian: scripts/install-deps.sh rtpengine)", err)
	}
	if 4*o.Calls > rtpenginePortMax-rtpenginePortMin+1 {
		return nil, fmt.Errorf("--relay rtpengine: %d calls need %d media ports, the range %d-%d has %d",
			o.Calls, 4*o.Calls, rtpenginePortMin, rtpenginePortMax, rtpenginePortMax-rtpenginePortMin+1)
	}
	ngPort, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tonevault-rtpengine-")
	if err != nil {
		return nil, err
	}
	h := &rtpengineHost{profile: o.RtpengineProfile, dir: dir, exited: make(chan struct{}), stderr: &tailBuffer{max: 4096}}
	if h.profile == "" {
		h.profile = RtpenginePass
	}
	// Every setting in a file of our own: without --config-file the
	// daemon reads /etc/rtpengine/rtpengine.conf, which asks for the
	// kernel module's table.
	conf := filepath.Join(dir, "rtpengine.conf")
	if err := os.WriteFile(conf, []byte(rtpengineConf(ngPort)), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	h.cmd = exec.Command(path, "--config-file="+conf, "--foreground", "--log-stderr")
	h.cmd.Stdout, h.cmd.Stderr = h.stderr, h.stderr
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start rtpengine: %w", err)
	}
	go func() { h.cmd.Wait(); close(h.exited) }()
	ngAddr := netip.AddrPortFrom(loopback, uint16(ngPort))
	if h.ng, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(ngAddr)); err != nil {
		h.close()
		return nil, err
	}
	// Ready once it answers a ping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := h.request(map[string]any{"command": "ping"}, 200*time.Millisecond)
		if err == nil && r["result"] == "pong" {
			break
		}
		select {
		case <-h.exited:
			h.close()
			return nil, fmt.Errorf("rtpengine exited at start: %s", h.stderr)
		default:
		}
		if time.Now().After(deadline) {
			h.close()
			return nil, fmt.Errorf("rtpengine did not answer a ping within 10 s (%v): %s", err, h.stderr)
		}
	}
	return h, nil
}

func rtpengineConf(ngPort int) string {
	return fmt.Sprintf(`[rtpengine]
# Userspace forwarding only: no kernel module.
table = -1
interface = %[1]s
listen-ng = %[1]s:%[2]d
port-min = %[3]d
port-max = %[4]d
# Warnings and worse: its per-call log lines would be part of its cost.
log-level = 4
# Longer than any run: nothing times out under measurement.
timeout = 3600
silent-timeout = 3600
delete-delay = 0
`, loopback, ngPort, rtpenginePortMin, rtpenginePortMax)
}

func freeUDPPort() (int, error) {
	c, err := listenLoopback()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return int(localPort(c).Port()), nil
}

// request sends one ng command and waits for the reply with its cookie.
// Only the open and close of calls use it, one at a time.
func (h *rtpengineHost) request(msg map[string]any, timeout time.Duration) (map[string]any, error) {
	body, err := bencode(msg)
	if err != nil {
		return nil, err
	}
	var c [8]byte
	rand.Read(c[:])
	cookie := hex.EncodeToString(c[:])
	pkt := append([]byte(cookie+" "), body...)
	buf := make([]byte, 65536)
	for try := 0; try < 3; try++ {
		if _, err := h.ng.Write(pkt); err != nil {
			return nil, err
		}
		h.ng.SetReadDeadline(time.Now().Add(timeout))
		for {
			n, err := h.ng.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // send again: the ng protocol is over UDP
				}
				return nil, err
			}
			got, rest, ok := strings.Cut(string(buf[:n]), " ")
			if !ok || got != cookie {
				continue // a late reply to an earlier try
			}
			v, err := bdecode([]byte(rest))
			if err != nil {
				return nil, fmt.Errorf("rtpengine reply: %w", err)
			}
			d, ok := v.(map[string]any)
			if !ok {
				return nil, errors.New("rtpengine reply is not a dictionary")
			}
			if d["result"] == "error" {
				return nil, fmt.Errorf("rtpengine %v: %v", msg["command"], d["error-reason"])
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("rtpengine %v: no reply", msg["command"])
}

// loadSDP is a G.711 offer or answer from a generator peer.
func loadSDP(peer netip.AddrPort, id int) string {
	return fmt.Sprintf("v=0\r\no=- %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"+
		"a=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n", id, peer.Addr(), peer.Addr(), peer.Port())
}

// sdpMedia is the address an SDP body asks audio to be sent to.
func sdpMedia(sdp string) (netip.AddrPort, error) {
	var addr netip.Addr
	var port uint64
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "c=IN IP4 "), strings.HasPrefix(line, "c=IN IP6 "):
			a, err := netip.ParseAddr(strings.TrimSpace(line[9:]))
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("sdp %q: %w", line, err)
			}
			addr = a
		case strings.HasPrefix(line, "m=audio "):
			f := strings.Fields(line)
			p, err := strconv.ParseUint(f[1], 10, 16)
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("sdp %q: %w", line, err)
			}
			port = p
		}
	}
	if !addr.IsValid() || port == 0 {
		return netip.AddrPort{}, errors.New("sdp without c= address or m=audio port")
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

func (h *rtpengineHost) open(cp, pp netip.AddrPort) (netip.AddrPort, netip.AddrPort, error) {
	id := len(h.calls)
	callID := fmt.Sprintf("load-%d", id)
	carrierTag, platformTag := fmt.Sprintf("c%d", id), fmt.Sprintf("p%d", id)
	fail := func(err error) (netip.AddrPort, netip.AddrPort, error) {
		return netip.AddrPort{}, netip.AddrPort{}, err
	}
	const timeout = 2 * time.Second
	// The carrier offers; the SDP rtpengine returns goes to the platform
	// and names where the platform sends.
	r, err := h.request(map[string]any{"command": "offer", "call-id": callID, "from-tag": carrierTag,
		"sdp": loadSDP(cp, 2*id), "ICE": "remove"}, timeout)
	if err != nil {
		return fail(err)
	}
	h.calls = append(h.calls, callID)
	sdp, _ := r["sdp"].(string)
	toPlatform, err := sdpMedia(sdp)
	if err != nil {
		return fail(fmt.Errorf("rtpengine offer: %w", err))
	}
	r, err = h.request(map[string]any{"command": "answer", "call-id": callID, "from-tag": carrierTag,
		"to-tag": platformTag, "sdp": loadSDP(pp, 2*id+1), "ICE": "remove"}, timeout)
	if err != nil {
		return fail(err)
	}
	sdp, _ = r["sdp"].(string)
	toCarrier, err := sdpMedia(sdp)
	if err != nil {
		return fail(fmt.Errorf("rtpengine answer: %w", err))
	}
	if h.profile == RtpengineMask {
		// The carrier's (the customer's) digits, toward the platform.
		if _, err := h.request(map[string]any{"command": "block DTMF", "call-id": callID, "from-tag": carrierTag,
			"DTMF-security": "silence", "delay-buffer": int(rtpengineDelay / time.Millisecond)}, timeout); err != nil {
			return fail(err)
		}
	}
	return toCarrier, toPlatform, nil
}

func (h *rtpengineHost) io() string {
	if h.profile == RtpengineMask {
		return fmt.Sprintf("rtpengine userspace, block DTMF (DTMF-security=silence, delay-buffer=%d)", rtpengineDelay/time.Millisecond)
	}
	return "rtpengine userspace, pass"
}

// pid is the daemon's: its CPU is what the run measures.
func (h *rtpengineHost) pid() int { return h.cmd.Process.Pid }

// close deletes the calls and stops the daemon. rtpengine reports no
// digits to the run.
func (h *rtpengineHost) close() int64 {
	if h.ng != nil {
		select {
		case <-h.exited:
		default:
			for _, id := range h.calls {
				h.request(map[string]any{"command": "delete", "call-id": id}, 500*time.Millisecond)
			}
		}
		h.ng.Close()
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exited:
	case <-time.After(5 * time.Second):
		h.cmd.Process.Kill()
		<-h.exited
	}
	os.RemoveAll(h.dir)
	return 0
}

// tailBuffer keeps the last max bytes the daemon wrote, for errors.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(t.b)))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return strings.Join(lines, "; ")
}

var _ io.Writer = (*tailBuffer)(nil)

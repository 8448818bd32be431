package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// The test binary doubles as `tonevault serve` in a process of its own,
// so that a test can give it a file descriptor limit of its own and send
// it real signals.
const (
	envSubprocess = "TONEVAULT_TEST_SUBPROCESS"
	envNoFile     = "TONEVAULT_TEST_NOFILE"
)

func TestMain(m *testing.M) {
	if os.Getenv(envSubprocess) == "serve" {
		os.Exit(subprocessServe())
	}
	os.Exit(m.Run())
}

// subprocessServe sets the limit on open files the test asked for (soft
// and hard: serve can raise neither past it) and runs serve.
func subprocessServe() int {
	if n, err := strconv.ParseUint(os.Getenv(envNoFile), 10, 64); err == nil && n > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			return 3
		}
	}
	return serve(os.Args[1:], os.Stdout, os.Stderr)
}

// serveProc is `tonevault serve` in its own process.
type serveProc struct {
	cmd         *exec.Cmd
	out, errOut syncBuffer
	done        chan int
	addrs       map[string]string
}

func startServeProcess(t *testing.T, cfgPath string, nofile int) *serveProc {
	t.Helper()
	p := &serveProc{done: make(chan int, 1)}
	p.cmd = exec.Command(os.Args[0], "--config", cfgPath)
	p.cmd.Env = append(os.Environ(), envSubprocess+"=serve", envNoFile+"="+strconv.Itoa(nofile))
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		p.done <- p.cmd.ProcessState.ExitCode()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	p.addrs = listeners(t, &p.out, p.done)
	return p
}

// abuseConfig writes a configuration for these tests: ports chosen by the
// kernel, new calls to agent, HMAC-signed audit, no Vault or PSP, the
// store in the test's directory (not the package's), and the given sip:
// lines (indented under sip:).
func abuseConfig(t *testing.T, agent, sipExtra string) (cfgPath, trail string) {
	t.Helper()
	dir := t.TempDir()
	trail = filepath.Join(dir, "audit.jsonl")
	cfg := fmt.Sprintf(`vault:
  address: http://127.0.0.1:1
sip:
  trunks:
    carrier:
      listen: 127.0.0.1:0
    platform:
      listen: 127.0.0.1:0
      target: sip:agent@%s
%s
media:
  port_min: 0
  port_max: 0
http:
  listen: 127.0.0.1:0
log:
  level: info
audit:
  path: %s
api:
  keys:
    - name: crm-test
      hash: %q
psp:
  addrs: []
  state_dir: %s
store:
  sqlite:
    path: %s
`, agent, sipExtra, trail, api.HashKey(serveTestKey), filepath.Join(dir, "psp"), filepath.Join(dir, "tonevault.db"))
	cfgPath = filepath.Join(dir, "tonevault.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, trail
}

// TestIdleHTTPConnectionsDoNotStarveCalls: serve runs with a limit of
// 1024 open files (the usual default soft limit). 2,000 clients open a
// keep-alive connection each, send one GET /healthz and stay idle. Then a
// customer calls: the call must connect, because the HTTP listener takes
// no more descriptors than the limit leaves after the reserve for calls.
// The clients come from 8 loopback addresses, so that the total cap is
// what stops them (the per-address cap would stop one address first).
func TestIdleHTTPConnectionsDoNotStarveCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const nofile, idle, sources = 1024, 2000, 8
	uas := callertest.NewUAS(t, callertest.UASOptions{})
	agent := strings.TrimPrefix(uas.Target(), "sip:pay@")
	cfgPath, _ := abuseConfig(t, agent, "  limits:\n    max_calls: 20\n    max_calls_per_source: 10")
	p := startServeProcess(t, cfgPath, nofile)
	httpAddr := p.addrs["http"]

	var answered, refused atomic.Int64
	var wg sync.WaitGroup
	conns := make([]net.Conn, 0, idle)
	for i := range idle {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(10+i%sources))}}
		c, err := d.Dial("tcp", httpAddr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: tonevault\r\n\r\n"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 512)
			n, err := c.Read(buf)
			switch {
			case err == nil && strings.HasPrefix(string(buf[:n]), "HTTP/1.1 200"):
				answered.Add(1)
			case err != nil && !isClosedByUs(err):
				refused.Add(1)
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	}()
	// Let the server take what it will before the call: until the count
	// has not moved for a second.
	last, still := int64(-1), 0
	waitFor(t, "the idle connections to settle", func() bool {
		if n := answered.Load() + refused.Load(); n != last {
			last, still = n, 0
			return false
		}
		still++
		return still >= 50
	})

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	call, err := caller.Dial(ctx, caller.Options{Target: "sip:pay@" + p.addrs["carrier"], Local: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("the call did not connect with %d idle HTTP connections: %v\nserve log:\n%s", idle, err, tail(p.errOut.String(), 3000))
	}
	connected := time.Since(start)
	hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer hcancel()
	if err := call.Hangup(hctx); err != nil {
		t.Errorf("hang up: %v", err)
	}
	call.Close()
	t.Logf("RLIMIT_NOFILE %d, %d idle connections from %d addresses: %d answered, %d closed by the server, %d waiting in the backlog; the call connected in %v",
		nofile, idle, sources, answered.Load(), refused.Load(), int64(idle)-answered.Load()-refused.Load(), connected.Round(time.Millisecond))
	if fd := logField(p.errOut.String(), "file descriptors"); fd != "" {
		t.Logf("serve: %s", fd)
	}
	if strings.Contains(p.errOut.String(), "too many open files") {
		t.Errorf("serve ran out of file descriptors:\n%s", tail(p.errOut.String(), 2000))
	}

	// The idle clients leave; the API answers again.
	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "/healthz to answer again", func() bool {
		c, err := net.DialTimeout("tcp", httpAddr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: tonevault\r\nConnection: close\r\n\r\n")
		b, _ := io.ReadAll(c)
		return strings.HasPrefix(string(b), "HTTP/1.1 200")
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := <-p.done; code != 0 {
		t.Errorf("serve exit %d:\n%s", code, tail(p.errOut.String(), 2000))
	}
}

func isClosedByUs(err error) bool {
	return strings.Contains(err.Error(), "use of closed network connection")
}

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logField returns the log line with msg, for the test's own log.
func logField(log, msg string) string {
	for l := range strings.SplitSeq(log, "\n") {
		if strings.Contains(l, `"msg":"`+msg+`"`) {
			return l
		}
	}
	return ""
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// requireSIPp skips the test when SIPp (Debian sip-tester) is missing, or
// fails it with TONEVAULT_REQUIRE_TOOLS=1.
func requireSIPp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err == nil {
		return p
	}
	if os.Getenv("TONEVAULT_REQUIRE_TOOLS") == "1" {
		t.Fatal("sipp not found (scripts/install-deps.sh sip); required by TONEVAULT_REQUIRE_TOOLS=1")
	}
	t.Skip("sipp not found (scripts/install-deps.sh sip)")
	return ""
}

// freeUDPPort is a loopback UDP port free a moment ago (SIPp wants fixed
// ports).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sippProc is one SIPp process.
type sippProc struct {
	cmd  *exec.Cmd
	out  syncBuffer
	dir  string
	done chan error
}

// startSIPp runs sipp with args in a directory of its own (its logs go
// there) and kills it at the end of the test if it is still running.
func startSIPp(t *testing.T, args ...string) *sippProc {
	t.Helper()
	bin := requireSIPp(t)
	s := &sippProc{dir: t.TempDir(), done: make(chan error, 1)}
	s.cmd = exec.Command(bin, append([]string{"-nostdin", "-i", "127.0.0.1", "-trace_err"}, args...)...)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

// errorLog is what SIPp wrote to its error logs.
func (s *sippProc) errorLog() string {
	logs, _ := filepath.Glob(filepath.Join(s.dir, "*errors.log"))
	var b strings.Builder
	for _, l := range logs {
		e, _ := os.ReadFile(l)
		b.Write(e)
	}
	return b.String()
}

// startAgent runs a SIPp agent that answers every call and returns its
// address.
func startAgent(t *testing.T) string {
	t.Helper()
	port := freeUDPPort(t)
	startSIPp(t, "-sn", "uas", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(freeUDPPort(t)))
	return "127.0.0.1:" + strconv.Itoa(port)
}

// floodStats counts the answers a flooder got: the INVITEs (by Call-ID)
// that got each status, retransmissions counted once.
type floodStats struct {
	mu             sync.Mutex
	sent           int
	seen           map[int]map[string]bool
	byCode         map[int]int
	retryAfterMiss int // 503s without Retry-After
}

// flood sends INVITEs that would each start a call (valid SDP), from
// 127.0.0.2, as fast as the socket takes them, until stop closes; it never
// ACKs. It returns when stop closes and the answers have been read.
func flood(t *testing.T, target string, stop <-chan struct{}) *floodStats {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	st := &floodStats{byCode: map[int]int{}, seen: map[int]map[string]bool{}}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, 65535)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			msg := string(buf[:n])
			if !strings.HasPrefix(msg, "SIP/2.0 ") || len(msg) < 12 {
				continue // a request (BYE): ignored
			}
			code, err := strconv.Atoi(msg[8:11])
			_, rest, ok := strings.Cut(msg, "\r\nCall-ID: ")
			callID, _, _ := strings.Cut(rest, "\r\n")
			if err != nil || !ok {
				continue
			}
			st.mu.Lock()
			if st.seen[code] == nil {
				st.seen[code] = map[string]bool{}
			}
			if !st.seen[code][callID] {
				st.seen[code][callID] = true
				st.byCode[code]++
				if code == 503 && !strings.Contains(msg, "\r\nRetry-After: ") {
					st.retryAfterMiss++
				}
			}
			st.mu.Unlock()
		}
	}()
	local := c.LocalAddr().String()
	const sdp = "v=0\r\no=f 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	for i := 0; ; i++ {
		select {
		case <-stop:
			time.Sleep(500 * time.Millisecond) // the last answers
			c.Close()
			<-readDone
			return st
		default:
		}
		msg := fmt.Sprintf("INVITE sip:flood@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-f%d\r\nFrom: <sip:flood@127.0.0.2>;tag=f%d\r\nTo: <sip:flood@%s>\r\n"+
			"Call-ID: flood-%d@127.0.0.2\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@%s>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
			target, local, i, i, target, i, local, len(sdp), sdp)
		if _, err := c.WriteTo([]byte(msg), dst); err != nil {
			t.Errorf("flood: %v", err)
		}
		st.mu.Lock()
		st.sent++
		st.mu.Unlock()
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // let the kernel's buffers drain a little
		}
	}
}

// TestINVITEFloodFromOneSource: one source floods the carrier trunk with
// INVITEs while a customer from another source calls: the customer's
// call connects, and the flooder gets 503 with Retry-After for all but
// its share. The control run, with the per-source limits as wide as the
// gateway's, shows that the flood would keep the customer out.
func TestINVITEFloodFromOneSource(t *testing.T) {
	if testing.Short() {
		t.Skip("a flood")
	}
	for _, tc := range []struct {
		name    string
		limits  string
		connect bool
	}{
		{"limited", "  limits:\n    max_calls: 40\n    max_calls_per_source: 10\n    requests_per_second: 20\n    burst: 20", true},
		{"control: no per-source limits", "  limits:\n    max_calls: 40\n    max_calls_per_source: 40\n    requests_per_second: 100000\n    burst: 100000", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			agent := startAgent(t)
			cfgPath, _ := abuseConfig(t, agent, "  drain_timeout: 1s\n"+tc.limits)
			p := startServeProcess(t, cfgPath, 0)
			stop := make(chan struct{})
			statsCh := make(chan *floodStats, 1)
			go func() { statsCh <- flood(t, p.addrs["carrier"], stop) }()
			time.Sleep(time.Second) // the flood is under way: the limits are reached

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			call, err := caller.Dial(ctx, caller.Options{Target: "sip:pay@" + p.addrs["carrier"], Local: "127.0.0.1:0"})
			took := time.Since(start)
			close(stop)
			st := <-statsCh
			if call != nil {
				hctx, hcancel := context.WithTimeout(context.Background(), 10*time.Second)
				call.Hangup(hctx)
				hcancel()
				call.Close()
			}
			metrics := ""
			if code, body := get(t, "http://"+p.addrs["http"]+"/metrics"); code == 200 {
				for l := range strings.SplitSeq(body, "\n") {
					if strings.HasPrefix(l, "tonevault_sip_requests_limited_total") {
						metrics += "\n  " + l
					}
				}
			}
			t.Logf("flood: %d INVITEs from 127.0.0.2, INVITEs answered by code %v; the customer's call: err=%v after %v%s",
				st.sent, st.byCode, err, took.Round(time.Millisecond), metrics)
			if tc.connect {
				if err != nil {
					t.Fatalf("the customer's call did not connect during the flood: %v", err)
				}
				if st.byCode[503] == 0 || st.retryAfterMiss > 0 {
					t.Errorf("the flooder got %d 503s, %d without Retry-After", st.byCode[503], st.retryAfterMiss)
				}
				if st.byCode[200] > 10 {
					t.Errorf("%d flood calls answered, more than max_calls_per_source (10)", st.byCode[200])
				}
			} else if err == nil {
				t.Error("control: the customer's call connected even without per-source limits; the flood is not reaching the caps")
			}
			p.cmd.Process.Signal(syscall.SIGTERM)
			if code := <-p.done; code != 0 {
				t.Errorf("serve exit %d:\n%s", code, tail(p.errOut.String(), 2000))
			}
		})
	}
}

// TestSIGTERMDrainsCalls: with 60 calls up (SIPp customers, a SIPp
// agent), SIGTERM makes serve refuse a new call with 503 and report not
// ready, and wait sip.drain_timeout: the 10 customers who hang up 3 s
// after answering end their calls themselves meanwhile; then serve ends
// the 50 left with a BYE on both legs. Every customer and the agent see
// their calls through, serve exits 0, and the audit trail verifies with
// 10 calls completed and 50 ended for shutdown.
func TestSIGTERMDrainsCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("60 calls")
	}
	const calls, leaving = 50, 10
	requireSIPp(t)
	agentPort := freeUDPPort(t)
	agent := startSIPp(t, "-sn", "uas", "-p", strconv.Itoa(agentPort), "-mp", strconv.Itoa(freeUDPPort(t)), "-m", strconv.Itoa(calls+leaving))
	cfgPath, trail := abuseConfig(t, "127.0.0.1:"+strconv.Itoa(agentPort),
		"  drain_timeout: 6s\n  limits:\n    requests_per_second: 200\n    burst: 200")
	p := startServeProcess(t, cfgPath, 0)
	customers := func(xml string, n int) *sippProc {
		scenario, err := filepath.Abs(filepath.Join("testdata", xml))
		if err != nil {
			t.Fatal(err)
		}
		return startSIPp(t, "-sf", scenario, "-m", strconv.Itoa(n), "-l", strconv.Itoa(n), "-r", "25",
			"-p", strconv.Itoa(freeUDPPort(t)), "-mp", strconv.Itoa(freeUDPPort(t)), "-s", "pay",
			"-timeout", "60s", "-timeout_error", p.addrs["carrier"])
	}

	// Calls that were answered, ended or not: on a loaded machine a
	// leaver may hang up before the last of the others is answered.
	answered := func() int {
		req, _ := http.NewRequest("GET", "http://"+p.addrs["http"]+"/v1/calls", nil)
		req.Header.Set("Authorization", "Bearer "+serveTestKey)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		defer res.Body.Close()
		var l struct {
			Calls []struct {
				AnsweredAt *time.Time `json:"answered_at"`
			}
		}
		json.NewDecoder(res.Body).Decode(&l)
		n := 0
		for _, c := range l.Calls {
			if c.AnsweredAt != nil {
				n++
			}
		}
		return n
	}
	staying := customers("uac_until_bye.xml", calls)
	waitFor(t, "50 answered calls", func() bool { return answered() == calls })
	leavers := customers("uac_hangs_up.xml", leaving)
	waitFor(t, "60 answered calls", func() bool { return answered() == calls+leaving })

	stopAt := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	waitFor(t, "/readyz to say no", func() bool {
		code, _ := get(t, "http://"+p.addrs["http"]+"/readyz")
		return code == 503
	})
	// A new call while draining: 503, without Retry-After (go elsewhere).
	late, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	dst, _ := net.ResolveUDPAddr("udp", p.addrs["carrier"])
	sdp := "v=0\r\no=l 1 1 IN IP4 127.0.0.3\r\ns=-\r\nc=IN IP4 127.0.0.3\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	fmt.Fprintf(writerTo{late, dst}, "INVITE sip:late@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-late\r\nFrom: <sip:late@127.0.0.3>;tag=l1\r\nTo: <sip:late@%s>\r\n"+
		"Call-ID: late@127.0.0.3\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		p.addrs["carrier"], late.LocalAddr(), p.addrs["carrier"], len(sdp), sdp)
	late.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		n, err := late.Read(buf)
		if err != nil {
			t.Fatalf("no answer to a call while draining: %v", err)
		}
		if s := string(buf[:n]); !strings.HasPrefix(s, "SIP/2.0 100") {
			if !strings.HasPrefix(s, "SIP/2.0 503") || strings.Contains(s, "Retry-After") {
				t.Errorf("a call while draining got %q", strings.SplitN(s, "\r\n", 2)[0])
			}
			break
		}
	}

	code := <-p.done
	stopped := time.Since(stopAt)
	if code != 0 {
		t.Errorf("serve exit %d:\n%s", code, tail(p.errOut.String(), 3000))
	}
	for _, s := range []struct {
		name string
		p    *sippProc
	}{{"customers staying", staying}, {"customers leaving", leavers}, {"agent", agent}} {
		select {
		case err := <-s.p.done:
			if err != nil {
				t.Errorf("SIPp %s: %v\n%s\n%s", s.name, err, tail(s.p.out.String(), 1500), tail(s.p.errorLog(), 1500))
			}
		case <-time.After(30 * time.Second):
			t.Errorf("SIPp %s still running: not every call got its BYE", s.name)
		}
	}

	recs := verifiedTrail(t, trail)
	var started, shutdown, completed, other int
	for _, r := range recs {
		switch {
		case r.Event == audit.EventSIPCallStarted:
			started++
		case r.Event == audit.EventSIPCallEnded && r.Reason == audit.ReasonShutdown:
			shutdown++
		case r.Event == audit.EventSIPCallEnded && r.Reason == audit.ReasonCompleted && r.Trunk == "carrier":
			completed++
		case r.Event == audit.EventSIPCallEnded:
			other++
		}
	}
	if started != calls+leaving || shutdown != calls || completed != leaving || other != 0 {
		t.Errorf("audit: %d calls started, %d ended for shutdown, %d completed by the customer, %d otherwise; want %d, %d, %d, 0",
			started, shutdown, completed, other, calls+leaving, calls, leaving)
	}
	t.Logf("SIGTERM with %d calls up: a new call refused while draining; %d ended by their customers during the 6s drain_timeout, the %d left ended with BYE; serve exited %v after the signal; trail verified (%d records)",
		calls+leaving, completed, shutdown, stopped.Round(10*time.Millisecond), len(recs))
}

// writerTo writes datagrams to one address.
type writerTo struct {
	c   *net.UDPConn
	dst *net.UDPAddr
}

func (w writerTo) Write(b []byte) (int, error) { return w.c.WriteTo(b, w.dst) }

// verifiedTrail verifies the trail with its development key and returns
// its records.
func verifiedTrail(t *testing.T, trail string) []audit.Record {
	t.Helper()
	key, err := audit.LoadHMACKey(trail + ".devkey")
	if err != nil {
		t.Fatal(err)
	}
	h, err := audit.NewHMAC(audit.HMACKey{ID: "dev", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(trail)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := audit.Verify(context.Background(), f, h); err != nil {
		t.Fatalf("the audit trail does not verify: %v", err)
	}
	f.Seek(0, io.SeekStart)
	var recs []audit.Record
	for r, err := range audit.Records(f) {
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

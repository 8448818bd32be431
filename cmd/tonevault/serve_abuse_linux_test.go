package main

import (
	"context"
	"fmt"
	"io"
	"net"
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
// kernel, new calls to agent, HMAC-signed audit, no Vault or PSP, and the
// given sip: lines (indented under sip:).
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
`, agent, sipExtra, trail, api.HashKey(serveTestKey), filepath.Join(dir, "psp"))
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

func isClosedByUs(err error) bool { return strings.Contains(err.Error(), "use of closed network connection") }

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

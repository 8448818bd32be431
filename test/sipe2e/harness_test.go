// Package sipe2e runs the gateway in-process between two SIPp instances:
// a customer (UAC) toward the carrier trunk and an agent (UAS) behind the
// platform trunk, on ephemeral loopback ports.
package sipe2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/sip"
)

const envRequireTools = "TONEVAULT_REQUIRE_TOOLS"

// requireSIPp skips (or fails, with TONEVAULT_REQUIRE_TOOLS=1) when SIPp
// is not installed.
func requireSIPp(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sipp")
	if err == nil {
		return p
	}
	msg := "sipp not found (Debian package sip-tester: scripts/install-deps.sh sip)"
	if os.Getenv(envRequireTools) == "1" {
		t.Fatalf("%s; required because %s=1", msg, envRequireTools)
	}
	t.Skipf("skipping: %s; set %s=1 to make this a failure", msg, envRequireTools)
	return ""
}

func scenario(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "scenarios", name)
}

// freePorts returns the first of n consecutive free UDP and TCP ports on
// loopback, from a random place in 20000-59999 (SIPp needs fixed ports;
// the kernel's ephemeral ones are left to the gateway).
func freePorts(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + 2*rand.IntN(20000)
		var closers []func()
		ok := true
		for p := base; p < base+n && ok; p++ {
			u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, func() { u.Close() })
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				ok = false
				break
			}
			closers = append(closers, func() { l.Close() })
		}
		for _, c := range closers {
			c()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

// memAudit keeps audit records in memory.
type memAudit struct {
	mu   sync.Mutex
	recs []audit.Record
}

func (m *memAudit) Append(_ context.Context, r audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, r)
	return uint64(len(m.recs)), nil
}

func (m *memAudit) events() []audit.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ev []audit.Event
	for _, r := range m.recs {
		ev = append(ev, r.Event)
	}
	return ev
}

// gateway is the gateway under test and what it reported.
type gateway struct {
	g      *sip.Gateway
	reg    *sip.Registry
	audit  *memAudit
	prom   *prometheus.Registry // the gateway's SIP metrics
	mu     sync.Mutex
	digits []media.Digit
}

// metric is the value of the counter name whose labels include labels
// (summed over the series that match).
func (g *gateway) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.prom.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range labels {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || lp.GetName() == k && lp.GetValue() == v
				}
				if !found {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// records are the audit records of event e.
func (m *memAudit) records(e audit.Event) []audit.Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []audit.Record
	for _, r := range m.recs {
		if r.Event == e {
			out = append(out, r)
		}
	}
	return out
}

func (g *gateway) digitString() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var b []byte
	for _, d := range g.digits {
		b = append(b, byte(d.Digit))
	}
	return string(b)
}

func (g *gateway) digitsCopy() []media.Digit {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]media.Digit(nil), g.digits...)
}

// startGateway runs the gateway with the real media relay, the platform
// trunk sending new calls to the agent at agentPort.
func startGateway(t *testing.T, agentPort int) *gateway {
	return startGatewayWith(t, agentPort, "", false)
}

// startGatewayWith also sets the agent's transport parameter ("" or
// "tcp") and, with reverse, routes calls from the platform trunk to the
// agent behind the carrier trunk instead.
func startGatewayWith(t *testing.T, agentPort int, agentTransport string, reverse bool) *gateway {
	t.Helper()
	return startGatewayMod(t, agentPort, agentTransport, reverse, nil)
}

// startGatewayMod is startGatewayWith with the SIP configuration changed
// by mod (TLS, SRTP) before the gateway starts. mediaBase, when given, is
// the first of 8 free ports (freePorts) for the relay, so that a capture
// can tell the gateway's media from other processes' on loopback.
func startGatewayMod(t *testing.T, agentPort int, agentTransport string, reverse bool, mod func(*sip.Config), mediaBase ...int) *gateway {
	t.Helper()
	return startGatewayOpts(t, agentPort, agentTransport, reverse, mod, nil, mediaBase...)
}

// startGatewayOpts is startGatewayMod with the gateway's options changed
// by opt (a resolver).
func startGatewayOpts(t *testing.T, agentPort int, agentTransport string, reverse bool, mod func(*sip.Config), opt func(*sip.Options), mediaBase ...int) *gateway {
	t.Helper()
	gw := &gateway{reg: sip.NewRegistry(0), audit: &memAudit{}, prom: prometheus.NewRegistry()}
	metrics, err := sip.NewMetrics(gw.prom)
	if err != nil {
		t.Fatal(err)
	}
	unsub := gw.reg.Subscribe(func(d media.Digit) {
		gw.mu.Lock()
		gw.digits = append(gw.digits, d)
		gw.mu.Unlock()
	})
	t.Cleanup(unsub)
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	mcfg := media.Config{
		BindIP: netip.MustParseAddr("127.0.0.1"), LookAhead: dtmf.DefaultLookAhead,
		MaskMode: dtmf.MaskTone, Policy: media.Always,
	}
	if len(mediaBase) > 0 {
		mcfg.PortMin, mcfg.PortMax = mediaBase[0], mediaBase[0]+7
	}
	relay, err := media.NewRelay(mcfg, media.Options{Digits: gw.reg, Logger: log.Named("media")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	loop := []sip.Network{sip.MustParseNetwork("127.0.0.0/8")}
	agent := fmt.Sprintf("sip:agent@127.0.0.1:%d", agentPort)
	if agentTransport != "" {
		agent += ";transport=" + agentTransport
	}
	carrierTarget, platformTarget := "sip:{user}@127.0.0.1:9", agent
	if reverse {
		carrierTarget, platformTarget = strings.Replace(agent, "agent@", "{user}@", 1), "sip:agent@127.0.0.1:9"
	}
	cfg := sip.Config{
		Trunks: sip.Trunks{
			Carrier:  sip.TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Allow: loop, Target: carrierTarget},
			Platform: sip.TrunkConfig{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Allow: loop, Target: platformTarget},
		},
		RejectUninspectable: true,
		RingTimeout:         20 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	opts := sip.Options{Relay: sip.AdaptRelay(relay), Registry: gw.reg, Audit: gw.audit, Log: log.Named("sip"), Metrics: metrics}
	if opt != nil {
		opt(&opts)
	}
	gw.g, err = sip.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	gw.g.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.g.Close(ctx)
	})
	return gw
}

// sippRun is one SIPp process.
type sippRun struct {
	name string
	cmd  *exec.Cmd
	out  bytes.Buffer
	dir  string
	done chan error
}

// startSIPp starts SIPp with the scenario and arguments in its own
// directory (for its error logs).
func startSIPp(t *testing.T, name, xml string, args ...string) *sippRun {
	t.Helper()
	bin := requireSIPp(t)
	r := &sippRun{name: name, dir: t.TempDir(), done: make(chan error, 1)}
	full := append([]string{"-sf", scenario(xml), "-nostdin", "-m", "1", "-timeout", "30s", "-timeout_error", "-trace_err", "-i", "127.0.0.1"}, args...)
	if !filepath.IsAbs(xml) {
		xml = scenario(xml)
	}
	full[1] = xml
	r.cmd = exec.Command(bin, full...)
	r.cmd.Dir = r.dir
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait waits for SIPp to end and fails the test, with its output and
// error log, when it did not pass.
func (r *sippRun) wait(t *testing.T) {
	t.Helper()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(60 * time.Second):
		r.cmd.Process.Kill()
		err = <-r.done
	}
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(r.dir, "*errors.log"))
		var el []byte
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			el = append(el, b...)
		}
		t.Errorf("sipp %s failed: %v\n--- output (tail) ---\n%s\n--- error log ---\n%s", r.name, err, tail(r.out.String(), 3000), el)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// agentRTP is the agent's RTP socket: the UAS's SDP points at it, so it
// receives what the gateway forwards to the platform side.
type agentRTP struct {
	conn *net.UDPConn
	mu   sync.Mutex
	pkts [][]byte
	done chan struct{}
}

func listenAgentRTP(t *testing.T) *agentRTP {
	t.Helper()
	var c *net.UDPConn
	for range 50 {
		p := freePorts(t, 2)
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
		if err == nil {
			break
		}
	}
	if c == nil {
		t.Fatal("no RTP port")
	}
	a := &agentRTP{conn: c, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.pkts = append(a.pkts, append([]byte(nil), buf[:n]...))
			a.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-a.done })
	return a
}

func (a *agentRTP) port() int { return a.conn.LocalAddr().(*net.UDPAddr).Port }

func (a *agentRTP) packets() [][]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([][]byte(nil), a.pkts...)
}

// call runs one call: the agent UAS behind the platform trunk, then the
// customer UAC toward the carrier trunk, and waits for both. It returns
// the gateway for checks.
type callSpec struct {
	uac, uas  string
	transport string // SIPp -t for the customer: "u1" (default) or "t1"
	corr      string
	agentTCP  bool // the agent listens on TCP (target ;transport=tcp)
	reverse   bool // the call comes in on the platform trunk
	// subst replaces text in both scenario files (values SIPp keys cannot
	// reach: a response code to expect, a pcap path).
	subst map[string]string
}

// substituted writes a copy of scenario xml with subst applied.
func substituted(t *testing.T, xml string, subst map[string]string) string {
	t.Helper()
	if len(subst) == 0 {
		return xml
	}
	b, err := os.ReadFile(scenario(xml))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range subst {
		s = strings.ReplaceAll(s, k, v)
	}
	p := filepath.Join(t.TempDir(), xml)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type callResult struct {
	gw  *gateway
	rtp *agentRTP
}

func runCall(t *testing.T, spec callSpec) callResult {
	t.Helper()
	requireSIPp(t)
	agentPort := freePorts(t, 1)
	agentTP, sippAgentTP := "", "u1"
	if spec.agentTCP {
		agentTP, sippAgentTP = "tcp", "t1"
	}
	gw := startGatewayWith(t, agentPort, agentTP, spec.reverse)
	rtp := listenAgentRTP(t)
	if spec.corr == "" {
		spec.corr = "ix-" + strconv.Itoa(rand.IntN(1e6))
	}
	if spec.transport == "" {
		spec.transport = "u1"
	}
	uasMedia := freePorts(t, 4)
	uas := startSIPp(t, "agent", substituted(t, spec.uas, spec.subst), "-p", strconv.Itoa(agentPort), "-t", sippAgentTP, "-mp", strconv.Itoa(uasMedia),
		"-key", "rtp_port", strconv.Itoa(rtp.port()))
	// Give the UAS a moment to bind; the gateway retransmits anyway.
	time.Sleep(200 * time.Millisecond)
	uacPort, uacMedia := freePorts(t, 1), freePorts(t, 4)
	carrier := gw.g.Addr("carrier")
	if spec.reverse {
		carrier = gw.g.Addr("platform")
	}
	uac := startSIPp(t, "customer", substituted(t, spec.uac, spec.subst), "-p", strconv.Itoa(uacPort), "-t", spec.transport, "-mp", strconv.Itoa(uacMedia),
		"-s", "4420700000", "-key", "corr", spec.corr, carrier.String())
	uac.wait(t)
	uas.wait(t)
	return callResult{gw: gw, rtp: rtp}
}

// waitEnded waits until the registry has n ended calls and returns them.
func waitEnded(t *testing.T, gw *gateway, n int) []sip.CallInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls := gw.reg.List(sip.Filter{State: sip.StateEnded})
		if len(calls) >= n || time.Now().After(deadline) {
			if len(calls) < n {
				t.Fatalf("ended calls = %d, want %d; all: %+v", len(calls), n, gw.reg.List(sip.Filter{}))
			}
			return calls
		}
		time.Sleep(20 * time.Millisecond)
	}
}

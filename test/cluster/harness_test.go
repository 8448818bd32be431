package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/cluster"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/test/pgserver"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// tvBin is the tonevault binary built for this run.
var tvBin string

// apiKey is the CRM's key on every node (not a secret).
const apiKey = "tvk_cluster-test-key-not-secret"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tonevault-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster: go env GOMOD:", err)
			return 1
		}
		tvBin = filepath.Join(dir, "tonevault")
		build := exec.Command("go", "build", "-o", tvBin, "./cmd/tonevault")
		build.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "cluster: go build: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// need skips (or, under make test, fails) a test whose tool is missing.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("TONEVAULT_REQUIRE_TOOLS") == "1" {
				t.Fatalf("%s not installed (scripts/install-deps.sh cluster)", tool)
			}
			t.Skipf("%s not installed (scripts/install-deps.sh cluster installs it)", tool)
		}
	}
}

// freePort is a free loopback port for proto ("tcp" or "udp").
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a child process whose output is kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, cmd: cmd, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	// Pdeathsig: a test killed or timed out takes its processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s output (tail):\n%s", name, tail(p.out.String(), 3000))
		}
	})
	return p
}

// kill ends the process group with SIGKILL and waits.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// node is one `tonevault serve` of the cluster.
type node struct {
	name    string
	cfg     string
	proc    *proc
	carrier string // host:port, UDP
	http    string
}

// rig is the whole cluster: PostgreSQL, a Vault HA cluster, psp-sim, a
// SIPp agent, three gateway nodes and Kamailio in front.
type rig struct {
	t       *testing.T
	dir     string
	pg      *pgserver.Server
	pgDB    string
	vault   *vaultserver.Cluster
	sim     *sim.Server
	agent   *proc
	nodes   []*node
	kam     *proc
	kamAddr string // host:port, UDP
	opts    rigOptions
}

// rigOptions tune the nodes.
type rigOptions struct {
	pspTimeout time.Duration // psp.timeout of every node
	nodes      int           // how many nodes (default 3)
	dispatch   int           // how many of them Kamailio sends calls to (default all)
	sqlite     bool          // one node alone on SQLite: no cluster section (benchmarks)
	logLevel   string        // log.level (default info)
}

var nodeNames = []string{"gw1", "gw2", "gw3"}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	need(t, "kamailio", "sipp")
	r := &rig{t: t, dir: t.TempDir()}
	r.pg = pgserver.Start(t)
	u := r.pg.NewDatabase(t)
	r.pgDB = u[strings.LastIndexByte(u, '/')+1 : strings.IndexByte(u, '?')]
	r.vault = vaultserver.StartCluster(t, 3)
	active, err := r.vault.WaitActive(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	roleID, secretFile := r.vaultSetup()
	r.sim, err = sim.Listen("127.0.0.1:0", sim.Config{Log: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.sim.Close() })

	agentPort := freePort(t, "udp")
	r.agent = startProc(t, "sipp agent", exec.Command("sipp", "-sf", agentScenario(t), "-i", "127.0.0.1", "-p", strconv.Itoa(agentPort), "-mi", "127.0.0.1", "-nostdin"))

	if o.nodes == 0 {
		o.nodes = len(nodeNames)
	}
	if o.dispatch == 0 {
		o.dispatch = o.nodes
	}
	if o.logLevel == "" {
		o.logLevel = "info"
	}
	names := nodeNames[:o.nodes]
	r.opts = o
	certs := filepath.Join(r.dir, "certs")
	if err := cluster.DevCerts(certs, names, time.Hour); err != nil {
		t.Fatal(err)
	}
	widgetSecret := filepath.Join(r.dir, "widget.key")
	if err := os.WriteFile(widgetSecret, []byte("cluster-widget-secret-not-secret-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	peerPorts := map[string]int{}
	for _, n := range names {
		peerPorts[n] = freePort(t, "tcp")
	}
	if o.pspTimeout == 0 {
		o.pspTimeout = 3 * time.Second
	}
	for _, name := range names {
		var peers strings.Builder
		for _, p := range names {
			if p != name {
				fmt.Fprintf(&peers, "    - {name: %s, addr: 127.0.0.1:%d}\n", p, peerPorts[p])
			}
		}
		storeAndCluster := fmt.Sprintf(`store:
  driver: postgres
  postgres:
    url: %s
cluster:
  node: %s
  listen: 127.0.0.1:%d
  peers: %s
%s  cert_file: %s
  key_file: %s
  ca_file: %s
  probe_interval: 500ms
  dead_after: 2s
`, u, name, peerPorts[name], map[bool]string{true: "[]", false: ""}[peers.Len() == 0], peers.String(),
			filepath.Join(certs, name+".pem"), filepath.Join(certs, name+".key"), filepath.Join(certs, "ca.pem"))
		if o.sqlite {
			storeAndCluster = fmt.Sprintf("store:\n  sqlite:\n    path: %s\n", filepath.Join(r.dir, name+".db"))
		}
		cfg := fmt.Sprintf(`sip:
  trunks:
    carrier:
      listen: 127.0.0.1:0
    platform:
      listen: 127.0.0.1:0
      target: sip:agent@127.0.0.1:%d
  drain_timeout: 1s
  # Behind Kamailio every call comes from one address: the per-source
  # limits are the node's.
  limits:
    max_calls: 1000
    max_calls_per_source: 1000
    requests_per_second: 2000
    burst: 4000
media:
  port_min: 0
  port_max: 0
http:
  listen: 127.0.0.1:0
log:
  level: %s
audit:
  path: %s
api:
  keys:
    - name: crm
      hash: %q
  widget_secret_file: %s
  rate_limit: # TestBenchForwardLatency asks as fast as it can
    requests_per_second: 100000
    burst: 100000
vault:
  address: %s
  addresses: [%s]
  auth:
    method: approle
    role_id: %s
    secret_id_file: %s
  timeout: 2s
  retries: 10
  backoff: 500ms
psp:
  addrs: [%s]
  timeout: %s
  lease_margin: 1s
  state_dir: ""
%s`, agentPort, o.logLevel, filepath.Join(r.dir, name+"-audit.jsonl"), api.HashKey(apiKey), widgetSecret,
			r.vault.Nodes[active].Addr, strings.Join(r.vault.Addrs(), ", "), roleID, secretFile,
			r.sim.Addr(), o.pspTimeout, storeAndCluster)
		path := filepath.Join(r.dir, name+".yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		r.nodes = append(r.nodes, &node{name: name, cfg: path})
	}
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.startNode(n)
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	r.startKamailio(o.dispatch)
	return r
}

// vaultSetup runs `tonevault vault setup` on the active Vault node, as an
// operator would, and returns the AppRole credentials it wrote.
//
// On a machine loaded enough to starve Raft's timers, the leader can
// step down in the middle ("leadership lost while committing log"):
// setup is idempotent, so it is run again on the new active node.
func (r *rig) vaultSetup() (roleID, secretFile string) {
	t := r.t
	out := filepath.Join(r.dir, "approle")
	for attempt := 1; ; attempt++ {
		active, err := r.vault.WaitActive(30 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(r.dir, "vault-setup.yaml")
		if err := os.WriteFile(cfg, []byte("vault:\n  address: "+r.vault.Nodes[active].Addr+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tvBin, "vault", "setup", "--config", cfg, "--out", out)
		cmd.Env = append(os.Environ(), "VAULT_TOKEN="+r.vault.RootToken)
		b, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(string(b), "vault unavailable") {
			t.Fatalf("tonevault vault setup: %v\n%s", err, b)
		}
		t.Logf("tonevault vault setup, attempt %d: %s", attempt, b)
	}
	id, err := os.ReadFile(filepath.Join(out, "role-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(id)), filepath.Join(out, "secret-id")
}

// startNode starts (or restarts) n and waits for its listener lines.
func (r *rig) startNode(n *node) {
	t := r.t
	n.proc = startProc(t, "node "+n.name, exec.Command(tvBin, "serve", "--config", n.cfg))
	deadline := time.Now().Add(60 * time.Second)
	// serve prints "cluster" first and "http" last: wait for the last, or
	// the lines after "cluster" may not be there yet.
	ready := "\nhttp "
	for !strings.Contains(n.proc.out.String(), ready) {
		if n.proc.exited() || time.Now().After(deadline) {
			t.Errorf("node %s did not start:\n%s", n.name, tail(n.proc.out.String(), 4000))
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for l := range strings.SplitSeq(n.proc.out.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "sip" && f[1] == "carrier":
			n.carrier = f[2]
		case len(f) == 2 && f[0] == "http":
			n.http = f[1]
		}
	}
}

// startKamailio writes the dispatcher list of the nodes and starts
// Kamailio with configs/kamailio/kamailio.cfg on a free UDP port, then
// waits until its probes have found every node.
func (r *rig) startKamailio(dispatch int) {
	t := r.t
	var list strings.Builder
	for _, n := range r.nodes[:dispatch] {
		fmt.Fprintf(&list, "1 sip:%s\n", n.carrier)
	}
	ds := filepath.Join(r.dir, "dispatcher.list")
	if err := os.WriteFile(ds, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(r.dir, "kamailio")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	r.kamAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t, "udp"))
	cfg, err := filepath.Abs("../../configs/kamailio/kamailio.cfg")
	if err != nil {
		t.Fatal(err)
	}
	r.kam = startProc(t, "kamailio", exec.Command("kamailio", "-f", cfg, "-DD", "-E", "-e",
		"-l", "udp:"+r.kamAddr, "-Y", run, "-P", filepath.Join(run, "kamailio.pid"), "-w", run,
		"-m", "64", "-M", "8",
		"-A", fmt.Sprintf("DS_LIST=%q", ds), "-A", "DS_PING_INTERVAL=1"))
	// The first probes go out one interval after the start.
	time.Sleep(1500 * time.Millisecond)
	if r.kam.exited() {
		t.Fatalf("kamailio exited:\n%s", r.kam.out.String())
	}
}

// sipp places calls through Kamailio: n calls at rate per second, each
// held hold; it returns the successful and failed counts.
func (r *rig) sipp(name string, n, rate int, hold time.Duration) (ok, failed int) {
	t := r.t
	dir := filepath.Join(r.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	scenario, err := filepath.Abs("testdata/caller.xml")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sipp", "-sf", scenario, "-s", "pay", r.kamAddr, "-i", "127.0.0.1", "-p", strconv.Itoa(freePort(t, "udp")), "-mi", "127.0.0.1",
		"-r", strconv.Itoa(rate), "-m", strconv.Itoa(n), "-l", strconv.Itoa(n), "-d", strconv.Itoa(int(hold/time.Millisecond)),
		"-nostdin", "-trace_stat", "-fd", "1", "-trace_err", "-timeout", "120s", "-timeout_error", "-recv_timeout", "20000")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	stats, _ := filepath.Glob(filepath.Join(dir, "*_.csv"))
	if len(stats) == 0 {
		t.Fatalf("sipp %s wrote no statistics (%v):\n%s", name, err, tail(string(out), 3000))
	}
	b, err := os.ReadFile(stats[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	get := func(k string) int {
		for i, h := range head {
			if h == k && i < len(last) {
				v, _ := strconv.Atoi(last[i])
				return v
			}
		}
		t.Fatalf("sipp statistics have no %s", k)
		return 0
	}
	ok, failed = get("SuccessfulCall(C)"), get("FailedCall(C)")
	if failed > 0 {
		errs, _ := filepath.Glob(filepath.Join(dir, "*_errors.log"))
		for _, e := range errs {
			b, _ := os.ReadFile(e)
			t.Logf("sipp %s failures by kind: %v", name, failureKinds(b))
		}
	}
	return ok, failed
}

// client is the CRM: it talks to one node's API, whichever it is.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func (r *rig) client(n *node) *client {
	return &client{t: r.t, base: "http://" + n.http, hc: &http.Client{Timeout: 60 * time.Second}}
}

type reply struct {
	code int
	body []byte
}

// do sends a request; a 503 is tried again, as a CRM honouring
// Retry-After would (a PostgreSQL restart costs each node's pooled
// connections one failed statement each).
func (c *client) do(method, path, body string, hdr ...string) reply {
	c.t.Helper()
	var r reply
	for i := range 20 {
		if r = c.once(method, path, body, hdr...); r.code != http.StatusServiceUnavailable {
			if i > 0 {
				c.t.Logf("%s %s: %d after %d answers 503", method, path, r.code, i)
			}
			return r
		}
		time.Sleep(250 * time.Millisecond)
	}
	return r
}

func (c *client) once(method, path, body string, hdr ...string) reply {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return reply{code: 0, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{code: resp.StatusCode, body: b}
}

type callView struct {
	ID          string            `json:"id"`
	State       string            `json:"state"`
	Correlation map[string]string `json:"correlation"`
}

// calls lists every node's calls through this node.
func (c *client) calls(query string) []callView {
	c.t.Helper()
	r := c.do("GET", "/v1/calls"+query, "")
	var l struct {
		Calls []callView `json:"calls"`
	}
	if r.code != 200 || json.Unmarshal(r.body, &l) != nil {
		c.t.Fatalf("GET /v1/calls%s: %d %s", query, r.code, r.body)
	}
	return l.Calls
}

type payView struct {
	ID     string `json:"id"`
	CallID string `json:"call_id"`
	State  string `json:"state"`
	Reason string `json:"reason"`
	Result *struct {
		Outcome string `json:"outcome"`
		Token   string `json:"token"`
	} `json:"result"`
}

func (c *client) payment(id string) (payView, reply) {
	r := c.do("GET", "/v1/payments/"+id, "")
	var v payView
	_ = json.Unmarshal(r.body, &v)
	return v, r
}

// waitPayment polls id through this node until want says so.
func (c *client) waitPayment(id string, d time.Duration, want func(payView) bool) payView {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		v, r := c.payment(id)
		if r.code == 200 && want(v) {
			return v
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("payment %s: %d %s after %v", id, r.code, r.body, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// noCardIn fails when any of the texts holds a card's data.
func noCardIn(t *testing.T, what string, text []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if bytes.Contains(text, []byte(s)) {
			t.Errorf("%s holds card data (%d bytes searched)", what, len(text))
		}
	}
}

func decode(b []byte, v any) error { return json.Unmarshal(b, v) }

// agentScenario is testdata/agent.xml, absolute: SIPp runs elsewhere.
func agentScenario(t *testing.T) string {
	p, err := filepath.Abs("testdata/agent.xml")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	unexpectedRE = regexp.MustCompile(`while (expecting '\d+'|pausing) \(index \d+\), received 'SIP/2.0 (\d+ [^\r\n']*)`)
	timeoutRE    = regexp.MustCompile(`receive timeout on message [^:]*:(\d+)`)
)

// failureKinds counts SIPp's failed calls by what went wrong: the
// unexpected answer and what was awaited, or a receive timeout.
func failureKinds(log []byte) map[string]int {
	out := map[string]int{}
	for _, m := range unexpectedRE.FindAllSubmatch(log, -1) {
		out[string(m[2])+" "+string(m[1])]++
	}
	for _, m := range timeoutRE.FindAllSubmatch(log, -1) {
		out["timeout at message "+string(m[1])]++
	}
	return out
}

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/sip/caller/callertest"
	"github.com/tonevault/tonevault/store"
	"github.com/tonevault/tonevault/test/pgserver"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// apiKey is the CRM's key in every test gateway (not a secret).
const apiKey = "tvk_e2e-test-key-not-secret"

type syncBuffer = testutil.SyncBuffer

// recorder keeps everything a test captured, by source, for the leak
// search: nothing the test saw may escape it.
type recorder struct {
	mu    sync.Mutex
	names []string
	bufs  map[string]*syncBuffer
	files map[string]string // name → path read at scan time
	// gateways counts gateway starts, to name their outputs.
	gateways int
}

func newRecorder() *recorder {
	return &recorder{bufs: map[string]*syncBuffer{}, files: map[string]string{}}
}

// writer returns the buffer for name, created on first use.
func (r *recorder) writer(name string) *syncBuffer {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, ok := r.bufs[name]
	if !ok {
		b = &syncBuffer{}
		r.bufs[name] = b
		r.names = append(r.names, name)
	}
	return b
}

func (r *recorder) add(name string, p []byte) {
	w := r.writer(name)
	w.Write(p)
	w.Write([]byte("\n"))
}

// file registers a file whose content at scan time is captured output.
func (r *recorder) file(name, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.files[name]; !ok {
		r.names = append(r.names, name)
	}
	r.files[name] = path
}

// sources returns every source's content now.
func (r *recorder) sources(t *testing.T) map[string]string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	for _, n := range r.names {
		if b, ok := r.bufs[n]; ok {
			out[n] = b.String()
			continue
		}
		data, err := os.ReadFile(r.files[n])
		if err != nil {
			t.Errorf("captured file %s: %v", n, err)
			continue
		}
		out[n] = string(data)
	}
	return out
}

// stackOptions vary the parts between tests.
type stackOptions struct {
	persistentVault bool
	pspTimeout      time.Duration // default 2s
	pspSlowDelay    time.Duration // how late psp-sim answers an amount ending in 0202; default sim's
	pspLeaseMargin  time.Duration // psp.lease_margin; default psp's
	media           string        // extra keys under media: (indented YAML lines)
	auditDir        string        // where the trail lives (default: the stack's directory)
	audit           string        // extra keys under audit: (indented YAML lines)
	// verify gives `tonevault audit verify` its options and environment
	// (default: the development HMAC key and the anchor beside the trail).
	verify func(s *stack) (args, env []string)
	// webhook is the URL final outcomes are posted to, signed with
	// stack.webhookSecret; "" for none.
	webhook string
	// platform is the platform trunk's target (default: the stack's SIP
	// agent), e.g. "agents:e2e"; extra are more top-level sections.
	platform string
	extra    string
	// carrier are more keys under sip.trunks.carrier (indented YAML
	// lines), e.g. its recording.
	carrier string
	// postgres puts the store in a PostgreSQL database of its own (a
	// server of the test's, test/pgserver) instead of SQLite.
	postgres bool
}

// stack is one complete deployment: Vault, acquirer, agent, gateway.
type stack struct {
	dir   string
	rec   *recorder
	vault *vaultserver.Server
	sim   *sim.Server
	agent *callertest.UAS
	gw    *gateway
	api   *apiClient
	cfg   string
	// webhookSecret signs the webhooks (stackOptions.webhook).
	webhookSecret []byte
	// pg and pgDB are the store's PostgreSQL server and database
	// (stackOptions.postgres); nil for SQLite.
	pg   *pgserver.Server
	pgDB string
}

// newStack starts everything and stops it at the end of the test.
func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	if o.pspTimeout == 0 {
		o.pspTimeout = 2 * time.Second
	}
	s := &stack{dir: t.TempDir(), rec: newRecorder()}
	s.vault = vaultserver.StartWith(t, vaultserver.Options{Persistent: o.persistentVault})
	roleID, secretFile := vaultSetup(t, s)

	var err error
	s.sim, err = sim.Listen("127.0.0.1:0", sim.Config{Log: s.rec.writer("psp-sim log"), SlowDelay: o.pspSlowDelay})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.sim.Close() })

	s.agent = callertest.NewUAS(t, callertest.UASOptions{})
	if o.platform == "" {
		o.platform = s.agent.Target()
	}
	if o.auditDir == "" {
		o.auditDir = s.dir
	}
	trail := filepath.Join(o.auditDir, "audit.jsonl")
	leaseMargin := ""
	if o.pspLeaseMargin > 0 {
		leaseMargin = fmt.Sprintf("  lease_margin: %s\n", o.pspLeaseMargin)
	}
	webhook := ""
	if o.webhook != "" {
		s.webhookSecret = []byte("e2e-webhook-secret-not-secret-0123456789")
		secretFile := filepath.Join(s.dir, "webhook.key")
		if err := os.WriteFile(secretFile, s.webhookSecret, 0o600); err != nil {
			t.Fatal(err)
		}
		webhook = fmt.Sprintf("  webhook:\n    url: %s\n    secret_file: %s\n    max_attempts: 1000\n", o.webhook, secretFile)
	}
	storeCfg := fmt.Sprintf("store:\n  sqlite:\n    path: %s\n", s.storePath())
	if o.postgres {
		s.pg = pgserver.Start(t)
		u := s.pg.NewDatabase(t)
		s.pgDB = u[strings.LastIndexByte(u, '/')+1 : strings.IndexByte(u, '?')]
		storeCfg = fmt.Sprintf("store:\n  driver: postgres\n  postgres:\n    url: %s\n", u)
	}
	s.cfg = filepath.Join(s.dir, "tonevault.yaml")
	cfg := fmt.Sprintf(`sip:
  trunks:
    carrier:
      listen: 127.0.0.1:0
%s    platform:
      listen: 127.0.0.1:0
      target: %q
  ring_timeout: 30s
  drain_timeout: 1s # a stop ends the test's calls after this
media:
  port_min: 0
  port_max: 0
%s
http:
  listen: 127.0.0.1:0
log:
  level: debug
audit:
  path: %s
%s
api:
  keys:
    - name: e2e
      hash: %q
%svault:
  address: %s
  auth:
    method: approle
    role_id: %s
    secret_id_file: %s
  timeout: 2s
psp:
  addrs: [%s]
  timeout: %s
  state_dir: %s
%s%s  outbox:
    backoff: 200ms
    max_backoff: 1s
%s`, o.carrier, o.platform, o.media, trail, o.audit, api.HashKey(apiKey), webhook, s.vault.Addr, roleID, secretFile,
		s.sim.Addr(), o.pspTimeout, filepath.Join(s.dir, "psp"), leaseMargin, storeCfg, o.extra)
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.rec.file("audit trail", trail)
	s.gw = startGateway(t, s.cfg, trail, s.rec)
	if o.verify != nil {
		s.gw.verifyArgs, s.gw.verifyEnv = o.verify(s)
	}
	s.api = &apiClient{base: "http://" + s.gw.http, rec: s.rec}
	return s
}

// storePath is the gateway's SQLite store: the reversal queue and the
// STAN counter.
func (s *stack) storePath() string { return filepath.Join(s.dir, "tonevault.db") }

// openStore opens the gateway's store, SQLite or PostgreSQL, for the
// test to read; it closes with the test.
func (s *stack) openStore(t *testing.T) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = s.storePath()
	if s.pg != nil {
		cfg.Driver, cfg.Postgres.URL = store.DriverPostgres, s.pg.URL(s.pgDB)
	}
	st, err := store.Open(ctxFor(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// vaultSetup runs `tonevault vault setup` with the root token, as an
// operator would, and returns the AppRole credentials it wrote.
func vaultSetup(t *testing.T, s *stack) (roleID, secretFile string) {
	t.Helper()
	cfg := filepath.Join(s.dir, "vault-setup.yaml")
	if err := os.WriteFile(cfg, []byte("vault:\n  address: "+s.vault.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(s.dir, "approle")
	cmd := exec.Command(tvBin, "vault", "setup", "--config", cfg, "--out", out)
	cmd.Env = append(os.Environ(), "VAULT_TOKEN="+s.vault.RootToken)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tonevault vault setup: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	s.rec.add("vault setup output", append(stdout.Bytes(), stderr.Bytes()...))
	id, err := os.ReadFile(filepath.Join(out, "role-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(id)), filepath.Join(out, "secret-id")
}

// gateway is `tonevault serve` running as a subprocess.
type gateway struct {
	cmd                     *exec.Cmd
	stdout, stderr          *syncBuffer
	done                    chan struct{}
	carrier, platform, http string
	trail                   string
	stopped                 bool
	verifyArgs, verifyEnv   []string // for verifyAudit, when not the defaults
}

// startGateway starts the binary with cfg, waits for its listener lines
// and kills it, if still running, at the end of the test.
func startGateway(t *testing.T, cfg, trail string, rec *recorder) *gateway {
	t.Helper()
	rec.mu.Lock()
	rec.gateways++
	n := rec.gateways
	rec.mu.Unlock()
	g := &gateway{
		stdout: rec.writer(fmt.Sprintf("gateway stdout (run %d)", n)),
		stderr: rec.writer(fmt.Sprintf("gateway stderr (run %d)", n)),
		done:   make(chan struct{}), trail: trail,
	}
	g.cmd = exec.Command(tvBin, "serve", "--config", cfg)
	g.cmd.Stdout, g.cmd.Stderr = g.stdout, g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.cmd.Wait(); close(g.done) }()
	t.Cleanup(func() {
		if !g.stopped {
			g.cmd.Process.Kill()
			<-g.done
		}
		switch {
		case !t.Failed():
		case os.Getenv(envDebug) == "1":
			t.Logf("gateway run %d stderr (tail):\n%s", n, tail(g.stderr.String(), 8000))
		default:
			// What went wrong is in the warnings and errors (the log holds
			// no card data: every test searches it).
			var warn strings.Builder
			for l := range strings.SplitSeq(g.stderr.String(), "\n") {
				if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, `"level":"error"`) {
					warn.WriteString(l + "\n")
				}
			}
			t.Logf("gateway run %d warnings and errors (tail; %s=1 for the whole log):\n%s", n, envDebug, tail(warn.String(), 6000))
		}
	})
	deadline := time.After(30 * time.Second)
	for !strings.Contains(g.stdout.String(), "\nhttp ") {
		select {
		case <-g.done:
			t.Fatalf("tonevault serve exited before listening: %v\nstderr:\n%s", g.cmd.ProcessState, g.stderr.String())
		case <-deadline:
			t.Fatalf("tonevault serve printed no listeners\nstdout:\n%s\nstderr:\n%s", g.stdout.String(), g.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	for l := range strings.SplitSeq(g.stdout.String(), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "sip" && f[1] == "carrier":
			g.carrier = f[2]
		case len(f) >= 3 && f[0] == "sip" && f[1] == "platform":
			g.platform = f[2]
		case len(f) == 2 && f[0] == "http":
			g.http = f[1]
		}
	}
	if g.carrier == "" || g.http == "" {
		t.Fatalf("listeners not understood:\n%s", g.stdout.String())
	}
	return g
}

// stop ends the gateway with SIGTERM, as an init system would, and
// expects a clean exit.
func (g *gateway) stop(t *testing.T) {
	t.Helper()
	if g.stopped {
		return
	}
	g.stopped = true
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		g.cmd.Process.Kill()
		<-g.done
		t.Fatalf("tonevault serve did not stop within 30s of SIGTERM\nstderr:\n%s", g.stderr.String())
	}
	if code := g.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("tonevault serve exited %d after SIGTERM\nstderr (tail):\n%s", code, tail(g.stderr.String(), 4000))
	}
}

// verifyAudit runs `tonevault audit verify` on the stopped gateway's
// trail with its development key, against the anchor beside it (or with
// verifyArgs), and wants it closed and anchored to its end.
func (g *gateway) verifyAudit(t *testing.T, rec *recorder) {
	t.Helper()
	args := g.verifyArgs
	if args == nil {
		args = []string{"--hmac-key-file", g.trail + ".devkey", "--key-id", "dev", "--anchor-file", g.trail + ".anchor"}
	}
	cmd := exec.Command(tvBin, append(append([]string{"audit", "verify"}, args...), g.trail)...)
	cmd.Env = append(os.Environ(), g.verifyEnv...)
	out, err := cmd.CombinedOutput()
	if m := regexp.MustCompile(`last seq (\d+), closed, signatures verified \(key id "[^"]+"\), anchored through seq (\d+)\n`).FindSubmatch(out); err == nil && (m == nil || string(m[1]) != string(m[2])) {
		t.Errorf("tonevault audit verify: not closed, signed and anchored to its end:\n%s", out)
	}
	rec.add("audit verify output", out)
	t.Logf("audit verify: %s", bytes.TrimSpace(out))
	if err != nil {
		t.Errorf("tonevault audit verify: %v\n%s", err, out)
	}
	// A record the trail refused (a field out of its syntax, an unknown
	// reason code) is an event lost, and only the log says so.
	for _, msg := range []string{"audit append failed", "audit record not written", "reversal not audited"} {
		if strings.Contains(g.stderr.String(), msg) {
			t.Errorf("the gateway's log says %q: an audit record was refused", msg)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ctxFor is a context that ends with the test.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

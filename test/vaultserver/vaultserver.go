// Package vaultserver starts a real HashiCorp Vault server on a loopback
// port for tests: a dev server (in-memory, unsealed, known root token) or a
// persistent one (raft storage in a temporary directory, initialised and
// unsealed here) that keeps its data across Stop and Restart, or an HA
// cluster of such servers (StartCluster: Raft, one active node, the
// others standbys, any of them killed with SIGKILL and restarted).
// (The minimal server build has inmem and raft storage, not file: the
// persistent server is a one-node raft cluster.)
//
// The server binary is built from the nested module in ./server by
// scripts/vault-server.sh and cached outside the work tree; see that script.
// Vault's server code is BUSL-licensed: it is a test tool, never shipped.
package vaultserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Environment variables.
const (
	// EnvRequireTools makes a missing or unbuildable server fail the test
	// instead of skipping it (make test sets it).
	EnvRequireTools = "TONEVAULT_REQUIRE_TOOLS"
	// EnvVaultBin names a Vault binary to use instead of the cached build.
	EnvVaultBin = "TONEVAULT_VAULT_BIN"
)

// startTimeout bounds the wait for a started server to answer; generous
// because the test machine is small and shared.
const startTimeout = 60 * time.Second

// Options choose the kind of server.
type Options struct {
	// Persistent starts a non-dev server with raft storage, initialised
	// with one unseal key: data survives Stop and Restart. The zero value
	// starts a dev server, whose storage is lost on Stop.
	Persistent bool
	// nodeID and joins make a node of a raft cluster (StartCluster).
	nodeID string
	joins  []string
}

// Server is a running (or stopped) Vault server.
type Server struct {
	Addr      string // http://127.0.0.1:PORT
	RootToken string
	Client    *api.Client // uses RootToken

	t         testing.TB
	bin       string
	opts      Options
	port      int
	dir       string // temp dir: logs, config, storage
	unsealKey string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	runs int
}

// Start builds or finds the Vault binary, starts a dev server on a free
// loopback port pair (Vault also binds PORT+1 for its cluster listener),
// waits until it answers and stops it when the test ends. It skips the
// test when the binary cannot be built, unless TONEVAULT_REQUIRE_TOOLS=1.
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(EnvRequireTools) == "1" {
			t.Fatalf("vaultserver: %v", err)
		}
		t.Skipf("vaultserver: %v (set %s=1 to fail instead of skipping)", err, EnvRequireTools)
	}
	s := &Server{t: t, bin: bin, opts: opts, dir: t.TempDir()}
	if opts.Persistent {
		s.RootToken = ""
	} else {
		s.RootToken = "root-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	t.Cleanup(s.Stop)
	var lastErr error
	// A free port can be taken by another test process between the check
	// and Vault's bind: try a few port pairs.
	for attempt := 0; attempt < 5; attempt++ {
		s.port, lastErr = freePortPair()
		if lastErr != nil {
			continue
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
		s.Stop()
	}
	if lastErr != nil {
		t.Fatalf("vaultserver: %v\n%s", lastErr, s.Log())
	}
	if opts.Persistent {
		if err := s.initAndUnseal(); err != nil {
			t.Fatalf("vaultserver: %v\n%s", err, s.Log())
		}
	}
	return s
}

// Stop stops the server (SIGTERM, then SIGKILL after 10 s). It is safe to
// call more than once. A dev server loses its data.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done, logf := s.cmd, s.done, s.log
	s.cmd, s.done, s.log = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	_ = logf.Close()
}

// Kill ends the server with SIGKILL, as a crash or the OOM killer would:
// nothing is flushed and nothing is sealed on the way out. Restart
// brings it back (a persistent server with its data, unsealed again).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done, logf := s.cmd, s.done, s.log
	s.cmd, s.done, s.log = nil, nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	_ = logf.Close()
}

// Seal seals a running persistent server, as an operator's "vault
// operator seal" would: it keeps listening and answers 503 to every
// request but health and unseal until Unseal.
func (s *Server) Seal() {
	s.t.Helper()
	if !s.opts.Persistent {
		s.t.Fatal("vaultserver: Seal needs a persistent server (a dev server cannot be unsealed again)")
	}
	if err := s.Client.Sys().Seal(); err != nil {
		s.t.Fatalf("vaultserver: seal: %v", err)
	}
}

// Unseal unseals a persistent server sealed by Seal and waits until it
// is active.
func (s *Server) Unseal() {
	s.t.Helper()
	if err := s.unseal(); err != nil {
		s.t.Fatalf("vaultserver: %v\n%s", err, s.Log())
	}
}

// Restart stops the server and starts it again on the same address. A
// persistent server is unsealed again and keeps its data; a dev server
// comes back empty with the same root token.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("vaultserver: restart: %v\n%s", err, s.Log())
	}
	if s.opts.Persistent {
		if err := s.unseal(); err != nil {
			s.t.Fatalf("vaultserver: restart: %v\n%s", err, s.Log())
		}
	}
}

// Log returns what the server wrote to stdout and stderr so far.
func (s *Server) Log() string {
	var b bytes.Buffer
	for i := 1; i <= s.runs; i++ {
		data, _ := os.ReadFile(s.logPath(i))
		b.Write(data)
	}
	return b.String()
}

func (s *Server) logPath(run int) string {
	return filepath.Join(s.dir, fmt.Sprintf("vault-%d.log", run))
}

func (s *Server) start() error {
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
	s.Addr = "http://" + listen
	var args []string
	if s.opts.Persistent {
		cfg, err := s.writeConfig(listen)
		if err != nil {
			return err
		}
		args = []string{"server", "-config=" + cfg}
	} else {
		args = []string{"server", "-dev", "-dev-listen-address=" + listen,
			"-dev-no-store-token", "-dev-root-token-id=" + s.RootToken}
	}
	s.runs++
	logf, err := os.Create(s.logPath(s.runs))
	if err != nil {
		return err
	}
	cmd := exec.Command(s.bin, args...)
	// A test process that dies without its cleanups (killed, timed out)
	// takes its servers with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server must not pick up a developer's Vault settings.
	cmd.Env = append(cleanEnv(), "HOME="+s.dir, "VAULT_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, logf
	s.mu.Unlock()

	cl, err := api.NewClient(&api.Config{Address: s.Addr, MaxRetries: 0, Timeout: 60 * time.Second})
	if err != nil {
		return err
	}
	if s.RootToken != "" {
		cl.SetToken(s.RootToken)
	}
	s.Client = cl
	return s.waitReady(done)
}

// waitReady polls /v1/sys/health until the server answers at all (a
// persistent server answers 501 before init and 503 while sealed).
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("vault server exited during start (port taken?)")
		default:
		}
		resp, err := hc.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			_ = resp.Body.Close()
			if !s.opts.Persistent && resp.StatusCode != http.StatusOK {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("vault server at %s did not answer within %v", s.Addr, startTimeout)
}

func (s *Server) writeConfig(listen string) (string, error) {
	storage := filepath.Join(s.dir, "storage")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		return "", err
	}
	cluster := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port+1))
	nodeID := s.opts.nodeID
	if nodeID == "" {
		nodeID = "tonevault-test"
	}
	var joins strings.Builder
	for _, j := range s.opts.joins {
		fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = %q\n  }\n", j)
	}
	// performance_multiplier 5, Vault's default for production: a killed
	// active node is replaced in 5 to 10 s. Tighter timings (1 or 2)
	// replace it in 1 to 4 s, but make the leader step down whenever a
	// loaded machine starves its timers for a second.
	cfg := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = %q
  performance_multiplier = 5
%s}
listener "tcp" {
  address         = %q
  cluster_address = %q
  tls_disable     = true
}
api_addr      = "http://%s"
cluster_addr  = "http://%s"
disable_mlock = true
ui            = false
`, storage, nodeID, joins.String(), listen, cluster, listen, cluster)
	path := filepath.Join(s.dir, "vault.hcl")
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}

func (s *Server) initAndUnseal() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	resp, err := s.Client.Sys().InitWithContext(ctx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	s.unsealKey, s.RootToken = resp.Keys[0], resp.RootToken
	s.Client.SetToken(s.RootToken)
	return s.unseal()
}

func (s *Server) unseal() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	st, err := s.Client.Sys().UnsealWithContext(ctx, s.unsealKey)
	if err != nil {
		return fmt.Errorf("unseal: %w", err)
	}
	if st.Sealed {
		return errors.New("unseal: still sealed")
	}
	// Wait until the server is active (it answers 200 on health).
	for ctx.Err() == nil {
		h, err := s.Client.Sys().HealthWithContext(ctx)
		if err == nil && !h.Sealed && h.Initialized && !h.Standby {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("unseal: server not active within %v", startTimeout)
}

// cleanEnv is the environment without VAULT_* variables.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") {
			env = append(env, kv)
		}
	}
	return env
}

// freePortPair finds a loopback port PORT with PORT+1 also free.
func freePortPair() (int, error) {
	for i := 0; i < 20; i++ {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+1)))
		_ = l1.Close()
		if err != nil {
			continue
		}
		_ = l2.Close()
		return port, nil
	}
	return 0, errors.New("no free loopback port pair found")
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the Vault server binary: $TONEVAULT_VAULT_BIN, or the
// cached build made by scripts/vault-server.sh build (which it runs; a cold
// build takes several minutes, so run it before the tests).
func Binary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findBinary() })
	return binPath, binErr
}

func findBinary() (string, error) {
	if p := os.Getenv(EnvVaultBin); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvVaultBin, p, err)
		}
		return p, nil
	}
	script, err := findScript()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command(script, "build")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("cannot build Vault's server with %s build: %v\n%s", script, err, stderr.String())
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s build printed %q: %w", script, p, err)
	}
	return p, nil
}

// findScript walks up from the working directory (a package directory
// under go test) to the repository's scripts/vault-server.sh.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "scripts", "vault-server.sh")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("scripts/vault-server.sh not found above the working directory")
		}
		dir = parent
	}
}

// Package pgserver starts a real PostgreSQL server for tests: Debian's
// binaries (package postgresql, found under /usr/lib/postgresql/*/bin),
// a cluster made by initdb in a temporary directory, and postgres itself
// as a child process listening on a free 127.0.0.1 port, with no Unix
// socket. Stop (or the test's cleanup) shuts it down and removes the
// directory.
//
// PostgreSQL refuses to run as root: as root, the cluster belongs to the
// "postgres" user that Debian's package creates, and the server runs as
// that user.
//
// Without the binaries the tests that need a server skip, unless
// TONEVAULT_REQUIRE_TOOLS=1 (make test sets it), when they fail.
// scripts/install-deps.sh store installs them.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Environment variables.
const (
	// EnvRequireTools makes a missing PostgreSQL fail the test instead
	// of skipping it.
	EnvRequireTools = "TONEVAULT_REQUIRE_TOOLS"
	// EnvBinDir names a directory holding initdb, postgres and pg_dump,
	// instead of the newest /usr/lib/postgresql/*/bin.
	EnvBinDir = "TONEVAULT_PG_BIN"
)

// Superuser is the cluster's superuser; it needs no password on the
// loopback address (trust authentication: a throwaway test cluster).
const Superuser = "tonevault"

const startTimeout = 60 * time.Second

// ErrNotInstalled: no PostgreSQL binaries were found.
var ErrNotInstalled = errors.New("pgserver: PostgreSQL is not installed (scripts/install-deps.sh store installs Debian's postgresql)")

// Server is a running PostgreSQL server.
type Server struct {
	Addr string // 127.0.0.1:PORT
	Dir  string // the cluster's directory, removed by Stop

	bin  string
	cred *syscall.Credential // non-nil when running as root
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  bytes.Buffer
	dbs  atomic.Int64
}

// Start starts a server for the test and stops it when the test ends. It
// skips the test when PostgreSQL is not installed, unless
// TONEVAULT_REQUIRE_TOOLS=1.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Launch()
	if err != nil {
		SkipOrFail(t, err)
	}
	t.Cleanup(s.Stop)
	return s
}

// SkipOrFail ends the test for err from Launch: a skip when PostgreSQL is
// not installed and TONEVAULT_REQUIRE_TOOLS is not 1, a failure otherwise.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv(EnvRequireTools) != "1" {
		t.Skipf("%v (set %s=1 to fail instead of skipping)", err, EnvRequireTools)
	}
	t.Fatal(err)
}

// Launch starts a server; the caller must Stop it. For a TestMain that
// shares one server among a package's tests.
func Launch() (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("pgserver: running as root, and PostgreSQL refuses to: no \"postgres\" user to run it as (%v)", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Not under t.TempDir: as root, the server's user must be able to
	// reach the directory, and /tmp lets it.
	s.Dir, err = os.MkdirTemp("", "tonevault-pg-")
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.Dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			_ = os.RemoveAll(s.Dir)
			return nil, fmt.Errorf("pgserver: %w", err)
		}
	}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(s.Dir)
		return nil, err
	}
	// A free port can be taken between the check and the server's bind:
	// try a few.
	for attempt := 0; attempt < 5; attempt++ {
		if err = s.start(); err == nil {
			return s, nil
		}
		s.stopProcess()
	}
	log := s.Log()
	_ = os.RemoveAll(s.Dir)
	return nil, fmt.Errorf("pgserver: %w\n%s", err, log)
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	// The server's user may not be able to enter the test's directory.
	cmd.Dir = s.Dir
	cmd.Env = append(cleanEnv(), "LC_ALL=C", "TZ=UTC")
	// Pdeathsig: a test process that dies without its cleanups (killed,
	// timed out) takes its server with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (s *Server) initdb() error {
	cmd := s.command("initdb", "-D", s.data(), "-U", Superuser, "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgserver: initdb: %v\n%s", err, out)
	}
	return nil
}

func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	return s.startAt(port)
}

// Restart stops the server with a fast shutdown (every client's session
// is cut, as in a database restart or failover) and starts it again on
// the same address with the same data.
func (s *Server) Restart() error {
	_, p, _ := net.SplitHostPort(s.Addr)
	port, err := strconv.Atoi(p)
	if err != nil {
		return err
	}
	s.stopProcess()
	return s.startAt(port)
}

func (s *Server) startAt(port int) error {
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "max_connections=50", "-c", "shared_buffers=32MB")
	s.mu.Lock()
	cmd.Stdout, cmd.Stderr = &lockedWriter{&s.mu, &s.log}, &lockedWriter{&s.mu, &s.log}
	s.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgserver: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return s.waitReady(done)
}

// waitReady connects until the server answers.
func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("postgres exited during start (port taken?)")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("postgres at %s did not answer within %v", s.Addr, startTimeout)
}

// URL is the postgres:// URL of database db on this server.
func (s *Server) URL(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User(Superuser), Host: s.Addr, Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates an empty database and returns its name.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), s.dbs.Add(1))
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgserver: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgserver: create database: %w", err)
	}
	return name, nil
}

// NewDatabase is CreateDatabase for a test: it fails the test on error
// and returns the database's URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	name, err := s.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s.URL(name)
}

// Dump returns pg_dump's plain-text dump of database db: schema and data.
func (s *Server) Dump(db string) ([]byte, error) {
	host, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command(filepath.Join(s.bin, "pg_dump"), "-h", host, "-p", port, "-U", Superuser,
		"--no-password", "--format=plain", db)
	cmd.Env = append(cleanEnv(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("pgserver: pg_dump: %v\n%s", err, stderr.String())
	}
	return out, nil
}

// Stop shuts the server down (fast shutdown, then SIGKILL after 10 s) and
// removes its directory. It is safe to call more than once.
func (s *Server) Stop() {
	s.stopProcess()
	if s.Dir != "" {
		_ = os.RemoveAll(s.Dir)
	}
}

func (s *Server) stopProcess() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	// SIGINT: "fast" shutdown, which ends the sessions and stops.
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// Log returns what the server wrote so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// BinDir returns the directory of PostgreSQL's server binaries:
// $TONEVAULT_PG_BIN, or the newest /usr/lib/postgresql/*/bin that has
// them all.
func BinDir() (string, error) {
	need := []string{"initdb", "postgres", "pg_dump"}
	has := func(dir string) bool {
		for _, n := range need {
			if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv(EnvBinDir); d != "" {
		if !has(d) {
			return "", fmt.Errorf("pgserver: %s=%s lacks one of %v", EnvBinDir, d, need)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

// version is the major version in /usr/lib/postgresql/VERSION/bin.
func version(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// cleanEnv is the environment without PG* variables, which would point
// the tools at another server.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

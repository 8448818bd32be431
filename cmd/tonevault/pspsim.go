package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
)

func init() {
	register(command{
		name:    "psp-sim",
		summary: "run an ISO 8583 acquirer simulator with test-card rules",
		run: func(args []string, stdout, stderr io.Writer) int {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return pspSim(ctx, args, stdout, stderr, nil)
		},
	})
}

var pspSimUsage = `Usage: tonevault psp-sim [options]

Run psp-sim, an ISO 8583:1987 acquirer host for development and tests: it
speaks the connector's message format and length header over TCP (or TLS)
and answers by fixed test-card rules, with faults on demand. It never holds
real card data: use test cards only.

Options:
  --listen ADDR        address to listen on (default 127.0.0.1:8583)
  --header H           length header: binary2 (2-byte binary, default) or
                       ascii4 (4 ASCII digits)
  --slow-delay D       delay of a "slow" answer (default 3s)
  --limit N            amounts above N minor units answer 51 (default ` + fmt.Sprint(sim.DefaultLimit) + `)
  --state-file FILE    keep counters as JSON in FILE, rewritten after each
                       message: received, approved, declined, no_answer,
                       slow, disconnects, sign_ons, echoes, reversals,
                       bad_messages, reversed_stans
  --ignore-reversals   receive reversals but never answer them
  --tls-cert FILE      serve TLS with this PEM certificate ...
  --tls-key FILE       ... and this PEM key
  --help               show this help

` + sim.Rules + `

Output: "psp-sim: listening on ADDR" on stdout, then one line per message.
Stops on SIGINT or SIGTERM. Exit status: 0 after a clean stop, 1 when it
cannot listen, 2 on a usage error.
`

// syncWriter serialises the simulator's log lines with our own.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// pspSim runs until ctx ends. ready, when not nil, gets the listen address.
func pspSim(ctx context.Context, args []string, stdout, stderr io.Writer, ready func(addr string)) int {
	fs := flag.NewFlagSet("psp-sim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	listen := fs.String("listen", "127.0.0.1:8583", "")
	header := fs.String("header", "binary2", "")
	slow := fs.Duration("slow-delay", 3*time.Second, "")
	limit := fs.Int64("limit", sim.DefaultLimit, "")
	stateFile := fs.String("state-file", "", "")
	ignoreRv := fs.Bool("ignore-reversals", false, "")
	cert := fs.String("tls-cert", "", "")
	key := fs.String("tls-key", "", "")
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "tonevault psp-sim: %s\nRun 'tonevault psp-sim --help' for details.\n", fmt.Sprintf(format, a...))
		return 2
	}
	if code, ok := parseOptions(fs, "psp-sim", pspSimUsage, args, stdout, stderr); !ok {
		return code
	}
	h, err := psp.ParseHeader(*header)
	if err != nil {
		return usageErr("%v", err)
	}
	if *slow <= 0 || *limit <= 0 {
		return usageErr("--slow-delay and --limit must be positive")
	}
	if (*cert == "") != (*key == "") {
		return usageErr("--tls-cert and --tls-key go together")
	}
	out := &syncWriter{w: stdout}
	cfg := sim.Config{Header: h, SlowDelay: *slow, Limit: *limit, Log: out, StateFile: *stateFile}
	if *cert != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintf(stderr, "tonevault psp-sim: %v\n", err)
			return 1
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	}
	s, err := sim.Listen(*listen, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault psp-sim: %v\n", err)
		return 1
	}
	s.SetIgnoreReversals(*ignoreRv)
	fmt.Fprintf(out, "psp-sim: listening on %s (header %s, tls %v)\n", s.Addr(), h, cfg.TLS != nil)
	if ready != nil {
		ready(s.Addr())
	}
	<-ctx.Done()
	s.Close()
	st := s.Stats()
	fmt.Fprintf(out, "psp-sim: stopped: %d received, %d approved, %d declined, %d reversals\n", st.Received, st.Approved, st.Declined, st.Reversals)
	return 0
}

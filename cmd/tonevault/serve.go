package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	sipgosip "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/internal/oplog"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/tokenize"
)

func init() {
	register(command{name: "serve", summary: "run the gateway: SIP B2BUA, media relay, HTTP", run: serve})
}

const serveUsage = `Usage: tonevault serve [--config FILE]

Run the gateway: the SIP B2BUA on the carrier and platform trunks, the
media relay that masks every customer digit, and the HTTP listener with
/metrics, /healthz (200 while the process runs) and /readyz (200 while the
SIP listeners are up and taking calls, and the audit trail can be
written).

SIGINT or SIGTERM stop it gracefully: new calls get 503 (and /readyz 503),
the calls in progress have sip.drain_timeout (20s by default) to end by
themselves, then the rest are ended with BYE; the API keeps serving
meanwhile, and payments being authorized are waited for. A second signal
cuts the wait for calls short.

File descriptors: serve raises its soft limit to the hard limit and keeps
sip.limits.max_calls x 6 of them for calls; the HTTP listener takes at
most what is left (see http.max_conns), so HTTP clients cannot starve
calls. The log says how the limit is split.

Options:
  --config FILE  configuration, read on top of the built-in default
                 (configs/tonevault.yaml); without it, the default alone
  --help         show this help

On start one line per listener is printed on stdout, e.g.
  sip carrier 127.0.0.1:5060 udp,tcp
  http 127.0.0.1:8080
The operational log (JSON lines, card numbers masked) goes to stderr.

Exit status: 0 after a clean stop, 1 when the gateway fails, 2 on a usage
or configuration error.
`

func serve(args []string, stdout, stderr io.Writer) int {
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	hurry, hurryUp := context.WithCancel(context.Background())
	defer hurryUp()
	go func() {
		select {
		case <-sig:
			stop()
		case <-ctx.Done():
			return
		}
		select {
		case <-sig:
			hurryUp()
		case <-hurry.Done():
		}
	}()
	return serveUntil(ctx, hurry, args, stdout, stderr)
}

// serveContext runs the gateway until ctx ends.
func serveContext(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return serveUntil(ctx, context.Background(), args, stdout, stderr)
}

// serveUntil runs the gateway until ctx ends, then stops it: it waits up
// to sip.drain_timeout for the calls to end by themselves, or until hurry
// ends.
func serveUntil(ctx, hurry context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "")
	if code, ok := parseOptions(fs, "serve", serveUsage, args, stdout, stderr); !ok {
		return code
	}
	cfg, err := configs.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	cfg.SIP.UserAgent = "ToneVault/" + buildVersion()

	log := oplog.New(stderr, cfg.Log.Level)
	defer log.Sync()
	// sipgo logs through slog; route it through the same masking core at
	// its own level. sipgo never sees bodies below debug.
	sipLog := oplog.NewSlog(oplog.NewCore(stderr, cfg.Log.SIPLevel), "sipgo")
	// A few sipgo paths log through its package default, not the logger
	// given to the user agent.
	sipgosip.SetDefaultLogger(sip.QuietLog(sipLog))

	// Vault and the acquirer first: with audit.signer vault, the trail's
	// checkpoints are signed by Vault, and it is closed (with a signed
	// final checkpoint) before they are.
	revs := newReversalLog(log)
	be, err := startBackends(cfg, revs, log)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	defer be.close()
	vault := be.vault
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Audit: every record goes through the queue (serve_audit.go), so no
	// caller waits for the disk or Vault, and payments stop while the
	// trail cannot be written.
	trail, err := openAudit(ctx, cfg, vault, log)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 1
	}
	aq, err := startAuditQueue(cfg, trail, reg, log)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 1
	}
	defer closeAuditQueue(aq, log)
	// At the stop, before the trail closes: the acquirer's last
	// reversals, then their audit records.
	revCtx, stopRevs := context.WithCancel(context.Background())
	revsDone := make(chan struct{})
	go func() {
		defer close(revsDone)
		revs.run(revCtx, aq)
	}()
	defer func() {
		be.stopPSP()
		stopRevs()
		<-revsDone
	}()
	appendAudit := func(r audit.Record) {
		r.Actor = "system"
		if _, err := aq.Append(context.Background(), r); err != nil {
			log.Error("audit append failed", zap.Error(err))
		}
	}

	cn, err := startCluster(cfg, reg, log)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	defer cn.close()
	metrics, err := sip.NewMetrics(reg)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 1
	}
	calls := sip.NewRegistry(0)
	relay, err := media.NewRelay(cfg.Media, media.Options{Logger: log.Named("media"), Registerer: reg, Digits: calls,
		FailClosed: func(callID, reason string) {
			// The audio was replaced or dropped, never forwarded; reason is
			// the metric label, which names an audit code.
			appendAudit(audit.Record{CallID: callID, Event: audit.EventMaskingFailed, Outcome: audit.Failure, Reason: auditCode(reason)})
		}})
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	defer relay.Close()
	ready := []zap.Field{zap.String("io", relay.IO()), zap.Int("port_min", cfg.Media.PortMin), zap.Int("port_max", cfg.Media.PortMax)}
	if relay.IO() == media.IOUring {
		ready = append(ready, zap.String("ring_scheduling", cfg.Media.RingPolicy()), zap.Int("ring_priority", cfg.Media.RingPriority))
	}
	log.Info("media relay ready", ready...)
	desk, stopAgents, err := startAgents(cfg, reg, aq, log) // serve_agents.go
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	defer stopAgents()
	gw, err := sip.New(cfg.SIP, sip.Options{
		Relay: sip.AdaptRelay(relay), Registry: calls, Audit: aq, Metrics: metrics,
		Log: log.Named("sip"), SIPLog: sipLog, Agents: desk, Node: cfg.Cluster.Node,
	})
	if err != nil {
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 1
	}
	pay, err := startPayments(cfg, gw, aq, be.pay, be.store, desk, log)
	if err != nil {
		gw.Close(context.Background())
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	defer pay.close()
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tonevault_store_payment_write_errors_total",
		Help: "Payment records the store did not take (the payment went on; its record lags until the next write).",
	}, func() float64 { return float64(pay.journal.Errors()) }), prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tonevault_capture_faults_total",
		Help: "Panics recovered in a payment's handling (a key press, its timers, the call's end) or an API request on it; each failed that payment alone.",
	}, func() float64 { return float64(pay.mgr.Faults()) }))
	fds, err := fileBudget(cfg)
	if err != nil {
		gw.Close(context.Background())
		fmt.Fprintf(stderr, "tonevault serve: %v\n", err)
		return 2
	}
	httpLn, err := net.Listen("tcp", cfg.HTTP.Listen.String())
	if err != nil {
		gw.Close(context.Background())
		fmt.Fprintf(stderr, "tonevault serve: http: %v\n", err)
		return 1
	}
	maxConns, perIP := cfg.HTTP.ConnLimits(fds.http)
	refusedConns := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tonevault_http_connections_refused_total",
		Help: "HTTP connections closed as soon as accepted: their client address had http.max_conns_per_ip open.",
	})
	reg.MustRegister(refusedConns, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tonevault_http_max_connections", Help: "The HTTP listener's connection cap (see tonevault serve --help).",
	}, func() float64 { return float64(maxConns) }))
	httpLn = api.LimitListener(httpLn, maxConns, perIP, func(netip.Addr) { refusedConns.Inc() })
	log.Info("file descriptors", zap.String("split", fds.String()), zap.Int("http_max_conns", maxConns), zap.Int("http_max_conns_per_ip", perIP))
	mux := httpMux(reg, gw, aq)
	// The API routes its own paths and answers every other one (404/405
	// as problem+json), so that the mux never redirects: "/v1" would get
	// a redirect to the "/v1/" subtree otherwise.
	mux.Handle("/", cn.front(pay, be.store, cfg, log))
	if cfg.HTTP.Pprof {
		log.Warn("profiler on /debug/pprof/ (http.pprof): heap profiles can hold card data; loopback only")
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	// CleanPaths outermost: no mux gets to redirect a path that is not
	// clean (with the client's credentials following).
	srv := cfg.HTTP.Server(api.CleanPaths(mux))
	// What net/http logs itself (a panic in a handler outside the API,
	// which recovers its own; TLS handshake errors) goes through the
	// operational log, card numbers masked, not to stderr raw.
	if l, err := zap.NewStdLogAt(log.Named("http"), zap.WarnLevel); err == nil {
		srv.ErrorLog = l
	}
	// Shutdown waits for requests to end; event streams would not.
	srv.RegisterOnShutdown(pay.api.EndStreams)
	httpErr := make(chan error, 1)
	go func() {
		if cfg.HTTP.TLS() {
			httpErr <- srv.ServeTLS(httpLn, cfg.HTTP.TLSCertFile, cfg.HTTP.TLSKeyFile)
			return
		}
		httpErr <- srv.Serve(httpLn)
	}()
	gw.Start()
	cn.listen(stdout, httpMux(reg, gw, aq), pay, be.store, cfg, log)

	for _, t := range []struct {
		name string
		tc   sip.TrunkConfig
	}{{"carrier", cfg.SIP.Trunks.Carrier}, {"platform", cfg.SIP.Trunks.Platform}} {
		fmt.Fprintf(stdout, "sip %s %s %s\n", t.name, gw.Addr(t.name), strings.Join(t.tc.Transports, ","))
	}
	// One line per listener, the same with TLS (tools parse it); the log
	// says which.
	fmt.Fprintf(stdout, "http %s\n", httpLn.Addr())
	log.Info("gateway started", zap.String("carrier", gw.Addr("carrier").String()), zap.String("platform", gw.Addr("platform").String()), zap.String("http", httpLn.Addr().String()), zap.Bool("tls", cfg.HTTP.TLS()))
	started := audit.Record{Event: audit.EventServiceStarted, Outcome: audit.Success}
	if v := buildVersion(); audit.ValidVersion(v) {
		started.Version = v
	}
	appendAudit(started)
	cfgReason, cfgDigest := configSource(*cfgPath)
	appendAudit(audit.Record{Event: audit.EventConfigLoaded, Outcome: audit.Success, Reason: cfgReason, Digest: cfgDigest})

	code := 0
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		log.Error("http server stopped", zap.Error(err))
		code = 1
	}
	stopGateway(cfg, hurry, gw, srv, log)
	stopped := audit.Record{Event: audit.EventServiceStopped, Outcome: audit.Success, Reason: audit.ReasonStopRequested}
	if code != 0 {
		stopped.Outcome, stopped.Reason = audit.Failure, audit.ReasonHTTPFailed
	}
	appendAudit(stopped)
	return code
}

// fileBudget raises the descriptor limit and splits it (see splitFDs).
func fileBudget(cfg configs.Config) (fdBudget, error) {
	limit, err := raiseNoFile()
	if err != nil {
		return fdBudget{}, fmt.Errorf("file descriptor limit: %w", err)
	}
	return splitFDs(limit, openFDs(), cfg.SIP.Limits.WithDefaults().MaxCalls)
}

// stopGateway stops taking calls, gives the calls in progress
// sip.drain_timeout (or until hurry ends) to end, ends the rest with BYE,
// then stops the HTTP server once its requests are done: a payment being
// authorized finishes (the processor's own timeout bounds it), and its
// session ends as it should rather than cut off. Event streams end at
// once.
func stopGateway(cfg configs.Config, hurry context.Context, gw *sip.Gateway, srv *http.Server, log *zap.Logger) {
	drain := cfg.SIP.DrainTimeout
	if drain <= 0 {
		drain = sip.DefaultDrainTimeout
	}
	log.Info("gateway stopping: new calls refused, waiting for the calls in progress", zap.Duration("drain_timeout", drain))
	dctx, cancel := context.WithTimeout(hurry, drain)
	left := gw.Drain(dctx)
	cancel()
	if left > 0 {
		log.Info("ending the calls left with BYE", zap.Int("calls", left))
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := gw.Close(cctx); err != nil {
		log.Warn("calls did not all end", zap.Error(err))
	}
	cancel()
	hctx, cancel := context.WithTimeout(context.Background(), cfg.PSP.Timeout+10*time.Second)
	defer cancel()
	if err := srv.Shutdown(hctx); err != nil {
		log.Warn("HTTP requests still running at stop", zap.Error(err))
	}
}

// configSource says what configuration was loaded, for the audit trail:
// the embedded default, or a file on top of it and the SHA-256 of the
// file's bytes in hex, so that a later change to it shows. The path stays
// out: it is the operator's free text. The digest is empty when the file
// cannot be read again.
func configSource(path string) (reason audit.Reason, digest string) {
	if path == "" {
		return audit.ReasonConfigDefault, ""
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return audit.ReasonConfigFile, ""
	}
	sum := sha256.Sum256(b)
	return audit.ReasonConfigFile, hex.EncodeToString(sum[:])
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// openAudit opens the trail with the configured HMAC key. Without one it
// uses a development key kept beside the trail (PATH.devkey), so that the
// trail can be continued and verified, and says loudly that it does.
func openAudit(ctx context.Context, cfg configs.Config, vault *tokenize.LazyVault, log *zap.Logger) (*audit.Writer, error) {
	if cfg.Audit.Signer == audit.SignerVault {
		return openVaultAudit(ctx, cfg, vault, log)
	}
	h, devKey, err := cfg.Audit.HMACSigner()
	if err != nil {
		return nil, err
	}
	if devKey != "" {
		log.Warn("AUDIT TRAIL SIGNED WITH A DEVELOPMENT KEY: set audit.key_file for production",
			zap.String("key_file", devKey))
	}
	w, err := audit.Open(ctx, cfg.Audit.Path, audit.Options{Signer: h, Anchor: auditAnchor(cfg, vault, log)})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return w, nil
}

// vaultWait is how long serve waits for Vault when the audit trail is
// signed by it: without its signing key, nothing can be audited, so the
// gateway does not start (fail closed).
const vaultWait = 30 * time.Second

// openVaultAudit opens the trail with checkpoints signed by the transit
// ed25519 key (audit.signer: vault).
func openVaultAudit(ctx context.Context, cfg configs.Config, vault *tokenize.LazyVault, log *zap.Logger) (*audit.Writer, error) {
	wctx, cancel := context.WithTimeout(ctx, vaultWait)
	defer cancel()
	v, err := vault.Wait(wctx)
	if err != nil {
		return nil, fmt.Errorf("audit.signer vault: no Vault login within %v: %w", vaultWait, err)
	}
	signer, err := tokenize.NewTransitSigner(v.Client(), cfg.Vault.Transit.Mount, cfg.Vault.Transit.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("audit.signer vault: %w", err)
	}
	w, err := audit.Open(ctx, cfg.Audit.Path, audit.Options{Signer: signer, Anchor: auditAnchor(cfg, vault, log)})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	log.Info("audit checkpoints signed by Vault", zap.String("key_id", signer.KeyID()))
	return w, nil
}

// httpMux serves /metrics, /healthz and /readyz.
func httpMux(reg *prometheus.Registry, gw *sip.Gateway, aq *audit.Queue) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !gw.Ready() {
			http.Error(w, "sip listeners not up", http.StatusServiceUnavailable)
			return
		}
		if aq.Err() != nil { // no trail, no payments (serve_audit.go)
			http.Error(w, "audit trail cannot be written: payments stopped", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

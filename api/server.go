package api

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/store"
)

// AuditSink is where the API records failed authentication and minted
// widget tokens; *audit.Writer satisfies it.
type AuditSink interface {
	Append(ctx context.Context, r audit.Record) (uint64, error)
}

// Deps are the API's collaborators.
type Deps struct {
	Payments Payments // required: CaptureManager(m) in the gateway
	Calls    Calls    // required: the SIP call registry
	// Store keeps idempotency keys, the webhook outbox and revoked widget
	// tokens (required).
	Store *store.Store
	// History finds the payments no longer in memory (Options.Retain, a
	// restart): capture's Journal, which writes them. Default: a Journal
	// reading Store.
	History History
	Audit   AuditSink // required in production; nil drops records (tests)
	Logger  *zap.Logger
	Now     func() time.Time
	// HTTPClient posts webhooks (default: a client with
	// Config.Webhook.Timeout).
	HTTPClient *http.Client
	// Agents are the browser agents (agent.go); nil: no agent routes
	// work, the agent page signs nobody in.
	Agents Agents
	// WidgetSecret and WebhookSecret override the files of Config (tests).
	WidgetSecret, WebhookSecret []byte
	// OutboxPoll is how often the webhook worker looks for events due
	// (default 500ms).
	OutboxPoll time.Duration
}

// History is the payments kept in the store; *capture.Journal satisfies
// it. Get's error wraps capture.ErrNotFound for an unknown id.
type History interface {
	Get(ctx context.Context, id string) (capture.View, error)
	List(ctx context.Context, q store.PaymentQuery) ([]capture.View, string, error)
}

// Server is the handler New returns.
type Server struct {
	cfg      Config
	deps     Deps
	log      *zap.Logger
	now      func() time.Time
	keys     *keyring
	tokens   *tokenSigner
	limit    *limiter
	failures *limiter // failed authentications per origin IP
	st       *store.Store
	history  History
	guard    guard
	streams  streamCounter
	// streamWrite is how long one write of an event stream may take
	// (streamWriteTimeout; tests shorten it).
	streamWrite time.Duration
	hooks       *webhooks // nil without a webhook URL
	mux         *http.ServeMux
	widget      http.Handler
	routes      []route
	ctx         context.Context
	stop        context.CancelFunc
	// streamsCtx ends the event streams (EndStreams, Close).
	streamsCtx context.Context
	endStreams context.CancelFunc
	watchers   sync.WaitGroup
}

// access says who may call a route.
type access int

const (
	public access = iota
	keyOnly
	keyOrWidget
	// keyOrWidgetQuery also takes a widget token from ?access_token=,
	// because EventSource cannot set headers.
	keyOrWidgetQuery
	// agentOnly takes agent tokens alone; agentQuery also from
	// ?access_token= (the agent page's event stream). agent.go.
	agentOnly
	agentQuery
)

type route struct {
	method, path string
	access       access
	h            http.HandlerFunc
}

// New builds the API handler. The result is a *Server: call Close at
// shutdown.
func New(cfg Config, deps Deps) (http.Handler, error) {
	return NewServer(cfg, deps)
}

// NewServer is New with the concrete type.
func NewServer(cfg Config, deps Deps) (*Server, error) {
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Payments == nil || deps.Calls == nil || deps.Store == nil {
		return nil, errors.New("api: Deps.Payments, Deps.Calls and Deps.Store are required")
	}
	if deps.Logger == nil {
		deps.Logger = zap.NewNop()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	// Every View leaves through the guard.
	g := newGuard(cfg, deps.Logger)
	deps.Payments = guardedPayments{deps.Payments, g}
	if deps.History == nil {
		deps.History = capture.NewJournal(deps.Store, capture.JournalOptions{Logger: deps.Logger.Named("api")})
	}
	keys, err := newKeyring(cfg.Keys)
	if err != nil {
		return nil, err
	}
	widgetSecret := deps.WidgetSecret
	if widgetSecret == nil && cfg.WidgetSecretFile != "" {
		if widgetSecret, err = ReadSecretFile(cfg.WidgetSecretFile); err != nil {
			return nil, err
		}
	}
	if widgetSecret == nil {
		if widgetSecret, err = newSecret(); err != nil {
			return nil, err
		}
	}
	if len(widgetSecret) < 32 {
		return nil, errors.New("api: the widget token secret must be at least 32 bytes")
	}
	s := &Server{
		cfg:    cfg,
		deps:   deps,
		log:    deps.Logger.Named("api"),
		now:    deps.Now,
		keys:   keys,
		tokens: &tokenSigner{secret: widgetSecret, ttl: cfg.WidgetTokenTTL, now: deps.Now, keys: keys, st: deps.Store},
		limit:  newLimiter(cfg.RateLimit, deps.Now),
		// Every failed authentication is an audit record, written with
		// fsync: an origin that keeps failing is slowed down first.
		failures:    newLimiter(RateLimit{PerSecond: 1, Burst: 30}, deps.Now),
		st:          deps.Store,
		history:     deps.History,
		guard:       g,
		streamWrite: streamWriteTimeout,
		mux:         http.NewServeMux(),
	}
	hookSecret := deps.WebhookSecret
	if cfg.Webhook.URL != "" && hookSecret == nil {
		if hookSecret, err = ReadSecretFile(cfg.Webhook.SecretFile); err != nil {
			return nil, err
		}
	}
	static, err := fs.Sub(widgetFS, "widget")
	if err != nil {
		return nil, err
	}
	s.widget = widgetHandler(static, pageCSP(cfg.FrameAncestors))
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.streamsCtx, s.endStreams = context.WithCancel(s.ctx)
	if cfg.Webhook.URL != "" {
		s.hooks = newWebhooks(s.ctx, cfg, hookSecret, deps, s.log)
	}
	s.watchers.Add(1)
	go s.housekeeping()
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(rt))
	}
	return s, nil
}

func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/v1/openapi.yaml", public, s.openAPI},
		{"GET", "/v1/calls", keyOnly, s.listCalls},
		{"GET", "/v1/calls/{id}", keyOnly, s.getCall},
		{"POST", "/v1/calls/{id}/payments", keyOrWidget, s.startPayment},
		{"GET", "/v1/payments", keyOrWidget, s.listPayments},
		{"GET", "/v1/payments/{id}", keyOrWidget, s.getPayment},
		{"GET", "/v1/payments/{id}/events", keyOrWidgetQuery, s.paymentEvents},
		{"POST", "/v1/payments/{id}/reset", keyOrWidget, s.resetField},
		{"POST", "/v1/payments/{id}/restart", keyOrWidget, s.restart},
		{"POST", "/v1/payments/{id}/cancel", keyOrWidget, s.cancel},
		{"POST", "/v1/payments/{id}/submit", keyOrWidget, s.submit},
		{"POST", "/v1/widget-tokens", keyOnly, s.mintWidgetToken},
		{"DELETE", "/v1/widget-tokens/{id}", keyOnly, s.revokeWidgetToken},
		{"GET", "/v1/webhooks/dead-letters", keyOnly, s.listDeadLetters},
		{"POST", "/v1/webhooks/dead-letters/{id}/requeue", keyOnly, s.requeueDeadLetter},
		// Browser agents (agent.go, agenttokens.go).
		{"POST", "/v1/agent-tokens", keyOnly, s.mintAgentToken},
		{"DELETE", "/v1/agent-tokens/{id}", keyOnly, s.revokeAgentToken},
		{"GET", "/v1/agent/events", agentQuery, s.agentEvents},
		{"PUT", "/v1/agent/availability", agentOnly, s.agentAvailability},
		{"POST", "/v1/agent/calls/{id}/answer", agentOnly, s.agentAnswer},
		{"DELETE", "/v1/agent/calls/{id}", agentOnly, s.agentHangup},
		{"POST", "/v1/agent/calls/{id}/widget-token", agentOnly, s.agentWidgetToken},
	}
}

// EndStreams ends every event stream, now and to come (their clients
// reconnect elsewhere), and nothing else: http.Server.Shutdown waits for
// requests to end, which a stream does not by itself. Register it with
// RegisterOnShutdown.
func (s *Server) EndStreams() { s.endStreams() }

// Close stops webhook deliveries and waits for session watchers to
// notice. Events not yet delivered stay in the outbox: the next start (or
// another gateway on the same database) delivers them.
func (s *Server) Close() error {
	s.stop()
	if s.hooks != nil {
		s.hooks.wait()
	}
	s.watchers.Wait()
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	r, inv := withInvolved(r)
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.handlerPanic(w, r, inv, v)
		}
	}()
	if !canonicalPath(r) {
		// The mux would redirect to the clean path, and clients follow
		// redirects with the credential: refuse instead (see CleanPaths).
		writeProblem(w, r, http.StatusNotFound, "not-found", uncleanPath)
		return
	}
	if r.URL.Path == "/widget" {
		http.Redirect(w, r, "/widget/", http.StatusMovedPermanently)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/widget/") {
		s.widget.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/agent" || strings.HasPrefix(r.URL.Path, "/agent/") {
		s.serveAgentPage(w, r)
		return
	}
	if hd, pattern := s.mux.Handler(r); pattern == "" {
		// No route: let the mux decide between 404 and 405 (it knows the
		// methods registered for the path), then answer with a problem.
		rec := &statusRecorder{header: http.Header{}}
		hd.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			h.Set("Allow", rec.header.Get("Allow"))
			writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "this method is not allowed here; see Allow")
			return
		}
		writeProblem(w, r, http.StatusNotFound, "not-found", "no such path")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// statusRecorder captures what the mux's fallback handlers write.
type statusRecorder struct {
	header http.Header
	status int
}

func (r *statusRecorder) Header() http.Header { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

// wrap adds authentication and rate limiting to a route.
func (s *Server) wrap(rt route) http.Handler {
	if rt.access == public {
		return rt.h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.authenticate(w, r, rt)
		if !ok {
			return
		}
		if ok, retry := s.limit.allow(p.bucket()); !ok {
			w.Header().Set("Retry-After", fmt.Sprint(retry))
			writeProblem(w, r, http.StatusTooManyRequests, "rate-limited", "slow down; see Retry-After")
			return
		}
		runTestFault("route", r.Pattern)
		rt.h(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, p)))
	})
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, rt route) (principal, bool) {
	a := rt.access
	cred, ok := bearer(r)
	fromQuery := false
	if !ok && (a == keyOrWidgetQuery || a == agentQuery) {
		if t := r.URL.Query().Get("access_token"); t != "" {
			cred, ok, fromQuery = t, true, true
		}
	}
	// Every refusal is an audit record, written with fsync: an origin
	// that keeps being refused is slowed down before anything is written.
	limited := func() bool {
		ok, retry := s.failures.allow(origin(r))
		if ok {
			return false
		}
		// Not audited one by one: the flood would fill the trail. The
		// operational log counts them.
		s.log.Warn("refused requests over the limit", zap.String("origin", origin(r)))
		w.Header().Set("Retry-After", fmt.Sprint(retry))
		writeProblem(w, r, http.StatusTooManyRequests, "rate-limited", "too many refused requests from this address")
		return true
	}
	fail := func(why audit.Reason) (principal, bool) {
		if limited() {
			return principal{}, false
		}
		s.auditAuthFailed(r, rt, why)
		w.Header().Set("WWW-Authenticate", `Bearer realm="tonevault"`)
		writeProblem(w, r, http.StatusUnauthorized, "unauthorized", "a valid API key or widget token is required as a Bearer credential")
		return principal{}, false
	}
	if !ok {
		return fail(audit.ReasonMissingCredentials)
	}
	if a == agentOnly || a == agentQuery || strings.HasPrefix(cred, agentPrefix) {
		return s.authenticateAgent(w, r, rt, cred, limited, fail)
	}
	if strings.HasPrefix(cred, widgetPrefix) {
		if a == keyOnly {
			// Refused before the token is even checked, and counted as a
			// refusal before it is audited.
			if limited() {
				return principal{}, false
			}
			s.auditAuthFailed(r, rt, audit.ReasonTokenNotAllowed)
			writeProblem(w, r, http.StatusForbidden, "forbidden", "a widget token cannot be used here")
			return principal{}, false
		}
		p, err := s.tokens.verify(r.Context(), cred)
		if err == nil {
			return p, true
		}
		reason, checked := tokenRefusal(err)
		if !checked {
			// Not the client's fault: no refusal to audit.
			w.Header().Set("Retry-After", "5")
			writeProblem(w, r, http.StatusServiceUnavailable, "unavailable", "widget tokens cannot be checked right now; try again")
			return principal{}, false
		}
		return fail(reason)
	}
	if fromQuery {
		// An API key in a URL would end up in access logs and histories.
		return fail(audit.ReasonKeyInQuery)
	}
	name, ok := s.keys.lookup(cred)
	if !ok {
		return fail(audit.ReasonUnknownKey)
	}
	return principal{key: name}, true
}

// auditAuthFailed records a refused request. The presented credential is
// never recorded, not even in part.
// The route's pattern stands for the path, whose ids are the client's
// text and could hold anything.
func (s *Server) auditAuthFailed(r *http.Request, rt route, why audit.Reason) {
	s.audit(r.Context(), audit.Record{
		Actor:   "anonymous",
		Origin:  origin(r),
		Event:   audit.EventAPIAuthFailed,
		Outcome: audit.Failure,
		Reason:  why,
		Route:   rt.method + " " + rt.path,
	})
}

func (s *Server) audit(ctx context.Context, rec audit.Record) {
	if s.deps.Audit == nil {
		return
	}
	if _, err := s.deps.Audit.Append(context.WithoutCancel(ctx), rec); err != nil {
		s.log.Error("audit append failed", zap.String("event", string(rec.Event)), zap.Error(err))
	}
}

func origin(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ReadSecretFile reads a widget or webhook secret as the API does: the
// file's bytes without a trailing newline, at least 32 of them. A webhook
// receiver that reads the same file this way checks signatures with the
// very key the gateway signs with.
func ReadSecretFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("api: secret file: %w", err)
	}
	b = []byte(strings.TrimRight(string(b), "\r\n"))
	if len(b) < 32 {
		return nil, fmt.Errorf("api: secret file %s: at least 32 bytes needed", path)
	}
	return b, nil
}

// Housekeeping of the store's API tables: expired idempotency keys and
// revocations, and delivered webhook events once deliveredKept has
// passed (kept a while for operators; a receiver drops repeats by id).
const (
	housekeepingEvery = 10 * time.Minute
	deliveredKept     = 7 * 24 * time.Hour
)

func (s *Server) housekeeping() {
	defer s.watchers.Done()
	t := time.NewTicker(housekeepingEvery)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
		_, err1 := s.st.ExpireIdempotencyKeys(ctx)
		_, err2 := s.st.ExpireRevocations(ctx)
		_, err3 := s.st.PruneOutbox(ctx, s.now().Add(-deliveredKept))
		cancel()
		if err := errors.Join(err1, err2, err3); err != nil && s.ctx.Err() == nil {
			s.log.Warn("store housekeeping failed; tried again later", zap.Error(err))
		}
	}
}

// tokenRefusal is the audit reason for refusing a token that verify or
// verifyAgent turned down; checked is false when the store could not say
// whether it was revoked, which is not the client's fault.
func tokenRefusal(err error) (reason audit.Reason, checked bool) {
	switch {
	case errors.Is(err, errTokenExpired):
		return audit.ReasonExpiredToken, true
	case errors.Is(err, errTokenRevoked):
		return audit.ReasonRevokedToken, true
	case errors.Is(err, errTokenKeyRemoved):
		return audit.ReasonTokenKeyRemoved, true
	case errors.Is(err, errTokenUnchecked):
		return "", false
	}
	return audit.ReasonInvalidToken, true
}

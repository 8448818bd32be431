package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/media"
)

// AuditSink takes audit records; *audit.Writer is one.
type AuditSink interface {
	Append(ctx context.Context, r audit.Record) (uint64, error)
}

// Options are the gateway's collaborators.
type Options struct {
	Relay    MediaRelay
	Registry *Registry    // nil: a new one
	Audit    AuditSink    // nil: no audit (tests only)
	Metrics  *Metrics     // nil: not measured
	Log      *zap.Logger  // nil: no logging
	SIPLog   *slog.Logger // sipgo's own logging, message contents withheld; nil: discarded
	Resolver Resolver     // DNS for targets (RFC 3263); nil: net.DefaultResolver
	// Agents are the pools of browser agents that targets "agents:NAME"
	// name (nil: none may be named).
	Agents AgentPools
	// Node names this gateway in its call ids (c-NODE-...), so that any
	// node of a cluster tells which holds a call (cluster.CallNode); ""
	// for a gateway alone.
	Node string
}

// Gateway is the B2BUA: two trunks, the calls between them.
type Gateway struct {
	cfg     Config
	node    string // Options.Node
	relay   MediaRelay
	reg     *Registry
	audit   AuditSink
	metrics *Metrics
	log     *zap.Logger

	carrier, platform *trunk

	mu       sync.Mutex
	calls    map[string]*call // by the SIP Call-ID of either leg
	closing  bool
	draining bool // no new calls (Drain); the calls in progress go on
	ready    atomic.Bool
	wg       sync.WaitGroup

	refusals refusals
	sources  *sources

	recorders  [2]*recorder          // by the leg of the trunk whose calls they record
	recordings map[string]*recording // SIPREC sessions by SIP Call-ID (under mu)

	agents     AgentPools
	agentCalls sync.Map  // call id → agents.Leg: the calls a browser agent answered
	agentEnds  sync.Once // the registry tells the agents' legs how their calls ended
}

// refusalWindow is how long after auditing a refused peer its further
// refusals are answered but not audited again.
const refusalWindow = 10 * time.Second

// refusals remembers when each refused peer was last audited.
type refusals struct {
	mu   sync.Mutex
	last map[netip.Addr]time.Time
}

// first reports whether a refusal of a at now should be audited.
func (r *refusals) first(a netip.Addr, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.last[a]; ok && now.Sub(t) < refusalWindow {
		return false
	}
	if r.last == nil || len(r.last) > 10000 {
		r.last = map[netip.Addr]time.Time{} // bounded: forget, audit again
	}
	r.last[a] = now
	return true
}

// New binds both trunks' sockets and returns the gateway; Start serves
// them.
func New(cfg Config, opts Options) (*Gateway, error) {
	if opts.Relay == nil {
		return nil, errors.New("sip: no media relay")
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "ToneVault"
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = DefaultRingTimeout
	}
	if cfg.CorrelationHeaders == nil {
		cfg.CorrelationHeaders = DefaultCorrelationHeaders
	}
	if err := cfg.Limits.validate(); err != nil {
		return nil, err
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	cfg.SessionTimer = cfg.SessionTimer.withDefaults()
	if cfg.Transfer.Refer == "" {
		cfg.Transfer.Refer = ReferAccept
	}
	if cfg.Transfer.Capture == "" {
		cfg.Transfer.Capture = CaptureCancel
	}
	g := &Gateway{cfg: cfg, node: opts.Node, relay: opts.Relay, reg: opts.Registry, audit: opts.Audit, metrics: opts.Metrics, log: opts.Log, calls: map[string]*call{},
		sources: newSources(cfg.Limits), recordings: map[string]*recording{}}
	if g.reg == nil {
		g.reg = NewRegistry(0)
	}
	g.agents = opts.Agents
	if err := g.checkPools(); err != nil {
		return nil, err
	}
	if g.log == nil {
		g.log = zap.NewNop()
	}
	slogger := slog.New(slog.DiscardHandler)
	if opts.SIPLog != nil {
		slogger = QuietLog(opts.SIPLog)
	}
	var err error
	if g.carrier, err = newTrunk("carrier", media.Carrier, cfg.Trunks.Carrier, cfg.UserAgent, slogger, opts.Resolver); err != nil {
		return nil, err
	}
	if g.platform, err = newTrunk("platform", media.Platform, cfg.Trunks.Platform, cfg.UserAgent, slogger, opts.Resolver); err != nil {
		g.carrier.close()
		return nil, err
	}
	for _, t := range []*trunk{g.carrier, g.platform} {
		g.handle(t)
		// Recording sessions leave through the platform trunk, where the
		// recorder is.
		if g.recorders[t.leg], err = newRecorder(t.cfg.Recording, t, g.platform, g.log, g.metrics); err != nil {
			g.carrier.close()
			g.platform.close()
			return nil, fmt.Errorf("sip: sip.trunks.%s.recording.srs: %w", t.name, err)
		}
	}
	return g, nil
}

// Start serves both trunks. Ready reports true from then on.
func (g *Gateway) Start() {
	g.carrier.serve()
	g.platform.serve()
	for _, t := range []*trunk{g.carrier, g.platform} {
		if t.cfg.ProbeInterval > 0 && t.cfg.Target != "" {
			g.goQuiet("probe", "", func() { t.probe(t.stop, g.log, g.metrics) })
		}
	}
	for _, r := range g.recorders {
		if r != nil && r.cfg.ProbeInterval > 0 {
			g.goQuiet("recorder_probe", "", func() { r.probe(r.via.stop) })
		}
	}
	g.ready.Store(true)
}

// Ready reports whether the SIP listeners are up.
func (g *Gateway) Ready() bool { return g.ready.Load() }

// Registry is the gateway's call registry.
func (g *Gateway) Registry() *Registry { return g.reg }

// Addr is the bound SIP address of trunk "carrier" or "platform" (both
// UDP and TCP, when enabled).
func (g *Gateway) Addr(trunk string) netip.AddrPort {
	switch trunk {
	case "carrier":
		return g.carrier.addr
	case "platform":
		return g.platform.addr
	}
	return netip.AddrPort{}
}

// Drain stops taking new calls (503 from now on, and Ready reports false)
// and waits until the calls in progress have ended by themselves, or ctx
// ends: it reports how many are left. Close ends those.
func (g *Gateway) Drain(ctx context.Context) int {
	g.ready.Store(false)
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	left := map[*call]bool{}
	for _, c := range g.calls {
		left[c] = true // a call is there once per leg (and per dialog a transfer replaced)
	}
	return len(left)
}

// Close ends every call (BYE on both legs, waiting up to ctx) and stops
// the listeners.
func (g *Gateway) Close(ctx context.Context) error {
	g.ready.Store(false)
	g.mu.Lock()
	g.closing = true
	seen := map[*call]bool{}
	var calls []*call
	for _, c := range g.calls {
		if !seen[c] {
			seen[c] = true
			calls = append(calls, c)
		}
	}
	g.mu.Unlock()
	for _, c := range calls {
		c.goCall("shutdown", func() { c.hangup(audit.ReasonShutdown) }) // g.wg waits for each call's end
	}
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("sip: close: %w", ctx.Err())
	}
	g.carrier.close()
	g.platform.close()
	return err
}

// SetCapture tells the media relay of the call with gateway id id that a
// payment capture started (on) or ended. It reports false when the call is
// not live. Under media policy "always" masking is on regardless; under
// "capture-only" this is what turns it on.
func (g *Gateway) SetCapture(id string, on bool) bool {
	info, ok := g.reg.Get(id)
	if !ok || info.State == StateEnded {
		return false
	}
	c := g.lookup(info.Carrier.CallID)
	if c == nil {
		c = g.lookup(info.Platform.CallID)
	}
	if c == nil || c.id != id {
		return false
	}
	c.sess.SetCapture(on)
	return true
}

func (g *Gateway) other(t *trunk) *trunk {
	if t == g.carrier {
		return g.platform
	}
	return g.carrier
}

func (g *Gateway) lookup(sipCallID string) *call {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.calls[sipCallID]
}

func (g *Gateway) record(r audit.Record) {
	if g.audit == nil {
		return
	}
	if r.Actor == "" {
		r.Actor = "system"
	}
	if _, err := g.audit.Append(context.Background(), r); err != nil {
		g.log.Error("audit append failed", zap.String("event", string(r.Event)), zap.Error(err))
	}
}

// handle registers the trunk's request handlers.
func (g *Gateway) handle(t *trunk) {
	guard := func(h func(*trunk, *sip.Request, sip.ServerTransaction)) func(*sip.Request, sip.ServerTransaction) {
		return func(req *sip.Request, tx sip.ServerTransaction) {
			defer g.recoverRequest(t, req, tx)
			a, ok := t.allowed(req.Source())
			if !ok {
				g.refuse(t, a, req, tx)
				return
			}
			normalizeParams(req)
			if cseqMismatch(req) {
				if !req.IsAck() {
					_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
				}
				return
			}
			if id := req.CallID(); id != nil {
				runTestFault("request", req.Method, id.Value())
			}
			g.limit(t, a, req, tx, h)
		}
	}
	t.srv.OnInvite(guard(g.onInvite))
	t.srv.OnAck(guard(g.onAck))
	t.srv.OnBye(guard(g.onInDialog))
	t.srv.OnUpdate(guard(g.onInDialog))
	t.srv.OnInfo(guard(g.onInDialog))
	t.srv.OnMessage(guard(g.onInDialog))
	t.srv.OnNotify(guard(g.onInDialog))
	t.srv.OnRefer(guard(g.onInDialog))
	t.srv.OnPrack(guard(g.onInDialog))
	t.srv.OnCancel(guard(func(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
		// sipgo answers CANCELs that match a pending INVITE itself.
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	}))
	t.srv.OnOptions(guard(func(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
		g.mu.Lock()
		draining := g.draining || g.closing
		g.mu.Unlock()
		if draining {
			// A load balancer's probe: take this node out while it
			// drains (a rolling restart), rather than have each new
			// call refused and sent on.
			_ = tx.Respond(sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil))
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", t.allow()))
		res.AppendHeader(sip.NewHeader("Accept", acceptTypes))
		res.AppendHeader(sip.NewHeader("Supported", supportedTags))
		_ = tx.Respond(res)
	}))
	t.srv.OnNoRoute(guard(func(t *trunk, req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() {
			return
		}
		// RFC 3261 8.2.1 and 21.5.2: 405 for a method the gateway knows
		// and does not take, 501 for one it does not know.
		code, text := 405, "Method Not Allowed"
		if !metricMethods[req.Method] {
			code, text = 501, "Not Implemented"
		}
		if t.leg == media.Carrier {
			g.metrics.stop(req.Method, refusedMethod)
		}
		res := sip.NewResponseFromRequest(req, code, text, nil)
		res.AppendHeader(sip.NewHeader("Allow", t.allow()))
		_ = tx.Respond(res)
	}))
}

// refuse answers a request from a peer that is not allowed with 403 and
// audits it. ACKs get no answer.
func (g *Gateway) refuse(t *trunk, from netip.Addr, req *sip.Request, tx sip.ServerTransaction) {
	g.metrics.refused(t.name)
	if req.IsAck() {
		return
	}
	if !g.refusals.first(from, time.Now()) {
		// Audited already a moment ago: a scanner must not be able to
		// flood the trail (each record is fsynced).
		_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
		return
	}
	g.log.Warn("sip request from peer not allowed", zap.String("trunk", t.name), zap.String("source", req.Source()), zap.String("method", req.Method.String()))
	rec := audit.Record{
		Actor:   "sip:" + from.String(),
		Origin:  req.Source(),
		Event:   audit.EventSIPPeerRefused,
		Outcome: audit.Failure,
		Reason:  audit.ReasonPeerNotAllowed,
		Trunk:   t.name,
		Method:  auditMethod(req.Method),
	}
	g.record(rec)
	_ = tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
}

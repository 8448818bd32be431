package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/api"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/payment"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/store"
	"github.com/tonevault/tonevault/tokenize"
)

// storeOpenTimeout bounds opening the store, migrations included.
const storeOpenTimeout = time.Minute

// backends are what Submit needs: the store (SQLite by default,
// PostgreSQL shared by a cluster), where the connector keeps its
// reversals and STANs; Vault (logging in in the background, so the
// gateway masks calls while Vault is still down) and the acquirer (the
// connector redials by itself).
type backends struct {
	pay   *payment.Service
	vault *tokenize.LazyVault
	store *store.Store
	psp   *psp.ISO // nil without psp.addrs
	log   *zap.Logger
}

// startBackends opens the store, starts the Vault login and connects the
// acquirer; its reversals go to revs.
func startBackends(cfg configs.Config, revs *reversalLog, log *zap.Logger) (*backends, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	st, err := store.Open(ctx, cfg.Store)
	cancel()
	if err != nil {
		return nil, err
	}
	log.Info("store open", zap.String("driver", st.Driver()), zap.Int64("schema", st.SchemaVersion()))
	b := &backends{pay: &payment.Service{Kind: cfg.PSP.Kind}, store: st, log: log}
	if len(cfg.PSP.Addrs) > 0 {
		pc := cfg.PSP
		pc.Logger, pc.OnReversal = log, revs.add
		if b.psp, err = psp.NewISO(pc, st); err != nil {
			_ = st.Close()
			return nil, fmt.Errorf("psp: %w", err)
		}
		b.pay.PSP = b.psp
	} else {
		log.Warn("no PSP configured (psp.addrs): payments end in a not_configured failure at submit")
	}
	b.vault = tokenize.Dial(cfg.Vault, tokenize.Options{Logger: log.Named("vault")})
	b.pay.Vault = b.vault
	return b, nil
}

// stopPSP gives the reversal queue its last chance and closes the
// connector: every reversal acknowledged by then has reached revs. It
// runs before the audit trail closes, so that they are audited.
func (b *backends) stopPSP() {
	if b.psp != nil {
		flushReversals(b.psp, reversalFlushWait, b.log)
		_ = b.psp.Close()
		b.psp = nil
	}
}

// close stops the acquirer (if stopPSP has not), Vault's login, then the
// store. With audit.signer vault it runs after the trail is closed, which
// needs Vault to sign its last checkpoint.
func (b *backends) close() {
	b.stopPSP()
	_ = b.vault.Close()
	if err := b.store.Close(); err != nil {
		b.log.Error("store close failed", zap.Error(err))
	}
}

// reversalFlushWait is how long a stopping gateway gives the reversal
// queue to empty.
const reversalFlushWait = 5 * time.Second

// pendingReversals is what flushReversals needs of *psp.ISO.
type pendingReversals interface {
	PendingReversals() ([]psp.Reversal, error)
}

// flushReversals waits, up to wait, until the acquirer has acknowledged
// every queued reversal: psp.ISO.Close does not wait for them, it leaves
// them in its durable queue for the next start. A reversal queued in the
// last moments (an authorization that timed out during the stop) is sent
// at once, so a short wait is usually enough; what is left is logged.
func flushReversals(q pendingReversals, wait time.Duration, log *zap.Logger) {
	deadline := time.Now().Add(wait)
	for {
		pend, err := q.PendingReversals()
		if err != nil {
			log.Warn("reversal queue unreadable at stop", zap.Error(err))
			return
		}
		if len(pend) == 0 {
			return
		}
		if time.Now().After(deadline) {
			log.Warn("reversals still queued at stop: they are sent at the next start", zap.Int("reversals", len(pend)))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// payments is payment capture and the API, wired onto the gateway's calls.
type payments struct {
	mgr     *capture.Manager
	journal *capture.Journal
	api     *api.Server
	unsub   []func()
}

// startPayments connects the call registry's digits, call ends and
// transfers (sip.transfer.capture) to capture, capture's start and end
// to the relay's capture-only masking,
// keeps the sessions in the store (ending, first, those a previous run
// left live: see capture.ReasonGatewayRestarted), and serves the API over
// them.
func startPayments(cfg configs.Config, gw *sip.Gateway, trail *audit.Queue, proc capture.Processor, st *store.Store, desk api.Agents, log *zap.Logger) (*payments, error) {
	reg := gw.Registry()
	journal := capture.NewJournal(st, capture.JournalOptions{
		Node: storeNode(cfg),
		Correlation: func(callID string) map[string]string {
			c, _ := reg.Get(callID)
			return c.Correlation
		},
		Events: api.WebhookEvents(cfg.API, log),
		Audit:  trail,
		Logger: log.Named("capture"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), storeOpenTimeout)
	ended, err := journal.EndInterrupted(ctx, time.Now())
	cancel()
	if err != nil {
		return nil, fmt.Errorf("store: ending the payments a previous run left live: %w", err)
	}
	for _, v := range ended {
		log.Warn("payment left live by the previous run ended", zap.String("payment_id", v.ID), zap.String("reason", v.Reason))
	}
	mgr, err := capture.NewManager(cfg.Capture, capture.Options{
		Processor: proc,
		Audit:     trail,
		Logger:    log.Named("capture"),
		OnActive:  func(callID string, on bool) { gw.SetCapture(callID, on) },
		Journal:   journal,
	})
	if err != nil {
		return nil, err
	}
	p := &payments{mgr: mgr, journal: journal}
	p.unsub = append(p.unsub,
		reg.Subscribe(func(d media.Digit) { mgr.Digit(d.CallID, d.Digit, d.At) }),
		reg.OnEnd(func(c sip.CallInfo) { mgr.CallEnded(c.ID) }),
		reg.OnTransfer(func(tr sip.Transfer) {
			if !tr.KeepCapture {
				mgr.CallTransferred(tr.CallID)
			}
		}),
	)
	if len(cfg.API.Keys) == 0 {
		log.Warn("no API keys configured (api.keys): every API request will be refused; create one with `tonevault api-key --name NAME`")
	}
	p.api, err = api.NewServer(cfg.API, api.Deps{
		Payments: api.CaptureManager(mgr),
		Calls:    callDirectory{reg},
		Store:    st,
		History:  journal,
		Audit:    trail,
		Logger:   log.Named("api"),
		Agents:   desk,
	})
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// storeNode names this gateway in the store's payments, so that a
// gateway restarting ends its own payments and not those its peers are
// taking: cluster.node when set (the name its call ids carry, and its
// peers know it by); otherwise none with SQLite (one gateway per file:
// every live payment there is this one's) and the host name with
// PostgreSQL. Either must be stable across restarts.
func storeNode(cfg configs.Config) string {
	if cfg.Cluster.Node != "" {
		return cfg.Cluster.Node
	}
	if cfg.Store.Driver != store.DriverPostgres {
		return ""
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, r := range h {
		if r < 0x80 && (r == '-' || r == '_' || '0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	return b.String()[:min(b.Len(), 64)]
}

// close stops the API's streams and webhooks and ends every capture (their
// card data is wiped).
func (p *payments) close() {
	for _, u := range p.unsub {
		u()
	}
	if p.api != nil {
		_ = p.api.Close()
	}
	p.mgr.Close()
}

// callDirectory shows the SIP registry to the API.
type callDirectory struct{ reg *sip.Registry }

func (d callDirectory) List(f api.CallFilter) []api.CallView {
	var out []api.CallView
	for _, c := range d.reg.List(sip.Filter{Caller: f.Caller, State: sip.State(f.State)}) {
		if matchCorrelation(c.Correlation, f.Correlation) {
			out = append(out, callView(c))
		}
	}
	return out
}

func (d callDirectory) Get(id string) (api.CallView, bool) {
	c, ok := d.reg.Get(id)
	if !ok {
		return api.CallView{}, false
	}
	return callView(c), true
}

// matchCorrelation: every wanted header is there with the wanted value
// (header names are case-insensitive in SIP, as sip stores them canonical).
func matchCorrelation(have, want map[string]string) bool {
	for k, v := range want {
		found := false
		for hk, hv := range have {
			if strings.EqualFold(hk, k) && hv == v {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func callView(c sip.CallInfo) api.CallView {
	v := api.CallView{
		ID: c.ID, State: string(c.State), Caller: c.Caller, Callee: c.Callee,
		StartedAt: c.Start, Correlation: maps.Clone(c.Correlation),
	}
	if !c.Answer.IsZero() {
		t := c.Answer
		v.AnsweredAt = &t
	}
	return v
}

// reversalLog carries acknowledged reversals to the audit trail. The
// connector starts (and drains the reversals a previous run left) before
// the trail is open, so they wait in a buffer until run starts.
type reversalLog struct {
	ch  chan psp.Reversal
	log *zap.Logger
}

func newReversalLog(log *zap.Logger) *reversalLog {
	return &reversalLog{ch: make(chan psp.Reversal, 1024), log: log}
}

func (l *reversalLog) add(r psp.Reversal) {
	select {
	case l.ch <- r:
	default:
		l.log.Error("reversal not audited: buffer full", zap.String("stan", r.STAN))
	}
}

// run appends each reversal to the trail until ctx ends. The record names
// the original by its STAN: an RRN is 12 digits, which no audit field
// takes since it could not be told from a card number; and the merchant
// reference is the CRM's free text.
func (l *reversalLog) run(ctx context.Context, trail *audit.Queue) {
	for {
		select {
		case <-ctx.Done():
			// Those acknowledged before the stop are still audited.
			for {
				select {
				case r := <-l.ch:
					l.audit(trail, r)
				default:
					return
				}
			}
		case r := <-l.ch:
			l.audit(trail, r)
		}
	}
}

func (l *reversalLog) audit(trail *audit.Queue, r psp.Reversal) {
	rec := audit.Record{Actor: "system", Event: audit.EventAuthorizationReversed, Outcome: audit.Success, Reason: auditCode(r.Reason)}
	if audit.ValidSTAN(r.STAN) {
		rec.STAN = r.STAN
	}
	if _, err := trail.Append(context.Background(), rec); err != nil {
		l.log.Error("reversal not audited", zap.String("stan", r.STAN), zap.Error(err))
	}
}

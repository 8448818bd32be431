package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/store"
)

// ReasonGatewayRestarted ends a payment that was live when its gateway
// stopped without ending it (a crash, kill -9, a power cut): the call and
// the card data went with the process, so the payment cannot go on. A
// gateway gives it to its own live payments when it starts again
// (Journal.EndInterrupted). An authorization that was in flight is
// reversed by psp, which wrote the reversal ahead of the request.
const ReasonGatewayRestarted = string(audit.ReasonGatewayRestarted)

// MOTO is what an authorization was sent with to mark it a telephone
// order, in its brand's terms (ISO 8583 fields 22, 25, 60, 61): kept
// with the payment for disputes and interchange queries, not shown by
// the API.
type MOTO struct {
	EntryMode     string // field 22 ("012")
	ConditionCode string // field 25 ("08")
	Field60       string // Visa's additional POS information, or ""
	Field61       string // Mastercard's POS data, or ""
}

// Journal keeps every session's View in the store, so that a payment can
// be read after its session left memory (Options.Retain) or the process
// restarted, and lists payments by call and by correlation header.
//
// What is written: the View (its JSON, masked as the API shows it) and the
// store's columns (state, outcome, masked card number, token,
// authorization code, the MOTO indicators, the call's correlation
// headers), at the session's start and whenever its state, its reason,
// the number of valid or failed fields or its result change: that is,
// each field completed, refused for good or reset, each step of a submit
// and the final state. Digits typed into a field are not written one by
// one; after a restart a field shows where it was when it last
// completed. Writes happen after the session's lock is released, in the
// session's order, before the call that made the change returns: Start
// returns a session already in the store, and Submit an outcome already
// on disk. A write that fails is logged and counted (Errors), and the
// payment goes on: the store keeps the next one.
type Journal struct {
	st      *store.Store
	node    string
	corr    func(callID string) map[string]string
	events  func(View) []store.OutboxEvent
	audit   AuditSink
	log     *zap.Logger
	timeout time.Duration
	errors  atomic.Uint64
}

// JournalOptions are a Journal's collaborators.
type JournalOptions struct {
	// Node names this gateway among those sharing a database
	// (store.Payment.Node); "" when it has the database to itself.
	Node string
	// Correlation returns a call's correlation headers, kept with its
	// payments (ListPayments by correlation). Optional.
	Correlation func(callID string) map[string]string
	// Events returns the webhook events to queue with a View, in the same
	// transaction (store.UpsertPayment): the API's, for final views.
	// Optional.
	Events func(View) []store.OutboxEvent
	// Audit is told of each payment EndInterrupted ends (session.ended,
	// gateway_restarted), as of any payment that ends. Optional.
	Audit  AuditSink
	Logger *zap.Logger
	// Timeout bounds one write (default 5s).
	Timeout time.Duration
}

// NewJournal returns a Journal writing to st.
func NewJournal(st *store.Store, o JournalOptions) *Journal {
	j := &Journal{st: st, node: o.Node, corr: o.Correlation, events: o.Events, audit: o.Audit, log: o.Logger, timeout: o.Timeout}
	if j.log == nil {
		j.log = zap.NewNop()
	}
	if j.timeout <= 0 {
		j.timeout = 5 * time.Second
	}
	return j
}

// Errors counts the writes that failed.
func (j *Journal) Errors() uint64 { return j.errors.Load() }

// saveMark is what makes a change worth writing.
type saveMark struct {
	state          State
	reason         string
	valid, failed  int
	result, marked bool
}

// markSave keeps a snapshot for unlock to write if the change is one the
// Journal keeps (see Journal). s.mu is held.
func (s *Session) markSave() {
	if s.m.journal == nil {
		return
	}
	m := saveMark{state: s.state, reason: s.reason, result: s.result != nil, marked: true}
	for _, f := range s.fields {
		switch f.status {
		case FieldValid:
			m.valid++
		case FieldFailed:
			m.failed++
		}
	}
	if m == s.saved {
		return
	}
	s.saved = m
	v := s.viewLocked()
	s.toSave = &v
}

// save writes v, logging a failure.
func (j *Journal) save(v View) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	if err := j.Save(ctx, v); err != nil {
		j.errors.Add(1)
		j.log.Error("capture: payment not written to the store", zap.String("payment_id", v.ID),
			zap.String("state", string(v.State)), zap.Error(err))
	}
}

// Save writes v (a newer version of a payment, or a new one) with the
// events Options.Events gives for it. A stored version as new or newer
// is kept.
func (j *Journal) Save(ctx context.Context, v View) error {
	p, err := paymentOf(v, j.node)
	if err != nil {
		return err
	}
	if j.corr != nil {
		p.Correlation = j.corr(v.CallID)
	}
	var events []store.OutboxEvent
	if j.events != nil {
		events = j.events(v)
	}
	_, err = j.st.UpsertPayment(ctx, p, events...)
	if err != nil && len(p.Correlation) > 0 && (errors.Is(err, store.ErrCardData) || errors.Is(err, store.ErrInvalid)) {
		// A header the store refuses (a card number typed into a
		// correlation header, a name it does not take) must not cost
		// the payment its record: written without the headers.
		j.log.Warn("capture: correlation headers refused by the store; payment kept without them",
			zap.String("payment_id", v.ID), zap.Error(err))
		p.Correlation = nil
		_, err = j.st.UpsertPayment(ctx, p, events...)
	}
	return err
}

// paymentOf is the store's record of v.
func paymentOf(v View, node string) (store.Payment, error) {
	snap, err := json.Marshal(v)
	if err != nil {
		return store.Payment{}, fmt.Errorf("capture: encoding payment %s: %w", v.ID, err)
	}
	p := store.Payment{
		ID: v.ID, CallID: v.CallID, State: string(v.State), Final: v.State.Final(), Reason: v.Reason,
		Amount: v.Amount, Currency: v.Currency, MerchantRef: v.MerchantRef, Description: v.Description, Merchant: v.Merchant,
		Node: node, Snapshot: string(snap),
		Version: v.Version, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt, ExpiresAt: v.ExpiresAt,
	}
	for _, f := range v.Fields {
		if f.Name != FieldCardNumber {
			continue
		}
		if f.Brand != "" {
			p.Brand = string(f.Brand)
		}
		if f.Valid && f.Masked != "" {
			// The store's masks are the audit trail's: '*' for a digit.
			p.MaskedPAN = strings.ReplaceAll(f.Masked, dot, "*")
		}
	}
	if r := v.Result; r != nil {
		p.Outcome, p.Token, p.AuthCode, p.ResponseCode = r.Outcome, r.Token, r.AuthCode, r.ResponseCode
		p.EntryMode, p.ConditionCode, p.Field60, p.Field61 = r.MOTO.EntryMode, r.MOTO.ConditionCode, r.MOTO.Field60, r.MOTO.Field61
	}
	return p, nil
}

// ViewOf is the View of a stored payment: as the API showed it when it
// was written (its snapshot), with the state, reason, version and time
// of the record, which EndInterrupted may have moved on. A final View
// shows no digits entered and no mask but the valid card number's, as a
// session that ends does.
func ViewOf(p store.Payment) (View, error) {
	var v View
	if p.Snapshot != "" {
		if err := json.Unmarshal([]byte(p.Snapshot), &v); err != nil {
			return View{}, fmt.Errorf("capture: payment %s: unreadable snapshot: %w", p.ID, err)
		}
	} else {
		// Written without a snapshot (by an older gateway): the columns
		// alone.
		v.Fields = []FieldView{{Name: FieldCardNumber, Status: FieldPending}}
		if p.MaskedPAN != "" {
			v.Fields[0] = FieldView{Name: FieldCardNumber, Status: FieldValid, Valid: true,
				Masked: strings.ReplaceAll(p.MaskedPAN, "*", dot), Entered: len(p.MaskedPAN), Brand: Brand(p.Brand)}
		}
		if p.Outcome != "" {
			v.Result = &Result{Outcome: p.Outcome, Token: p.Token, AuthCode: p.AuthCode, ResponseCode: p.ResponseCode, Reason: p.Reason}
		}
		v.Amount, v.Currency, v.MerchantRef, v.Description = p.Amount, p.Currency, p.MerchantRef, p.Description
		v.CreatedAt, v.ExpiresAt = p.CreatedAt, p.ExpiresAt
	}
	v.ID, v.CallID, v.State, v.Reason, v.Merchant = p.ID, p.CallID, State(p.State), p.Reason, p.Merchant
	v.Version = p.Version
	if !p.UpdatedAt.Equal(v.UpdatedAt) {
		// Moved on since the snapshot (EndInterrupted); the same instant
		// keeps the snapshot's writing of it.
		v.UpdatedAt = p.UpdatedAt
	}
	if v.Result != nil {
		v.Result.MOTO = MOTO{EntryMode: p.EntryMode, ConditionCode: p.ConditionCode, Field60: p.Field60, Field61: p.Field61}
	}
	if v.State.Final() {
		endView(&v)
	}
	return v, nil
}

// endView shows v as a session that ended shows itself: no current
// field, no digits entered, no mask but a valid card number's.
func endView(v *View) {
	v.CurrentField = ""
	for i := range v.Fields {
		f := &v.Fields[i]
		f.Entered = 0
		if f.Name != FieldCardNumber || !f.Valid {
			f.Masked, f.Brand = "", ""
		}
	}
}

// Get returns the stored View of payment id, or an error wrapping
// ErrNotFound.
func (j *Journal) Get(ctx context.Context, id string) (View, error) {
	p, err := j.st.GetPayment(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return View{}, fmt.Errorf("capture: payment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return View{}, err
	}
	return ViewOf(p)
}

// List returns one page of the stored payments q selects, newest first,
// and the cursor of the next page ("" on the last).
func (j *Journal) List(ctx context.Context, q store.PaymentQuery) ([]View, string, error) {
	page, err := j.st.ListPayments(ctx, q)
	if err != nil {
		return nil, "", err
	}
	out := make([]View, 0, len(page.Payments))
	for _, p := range page.Payments {
		v, err := ViewOf(p)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	return out, page.Next, nil
}

// EndInterrupted ends, failed with reason gateway_restarted, the payments
// this gateway (JournalOptions.Node; every payment when "") left live
// when it stopped without ending them, writes their session.ended to the
// trail (JournalOptions.Audit), and returns them as they are now.
// Call it once at start, before the first session: a payment another
// gateway is taking is not this one's to end. Each gets its webhook
// events (JournalOptions.Events) as any payment that ends.
func (j *Journal) EndInterrupted(ctx context.Context, now time.Time) ([]View, error) {
	var ended []View
	q := store.PaymentQuery{Live: true, Node: j.node, Limit: 100}
	for {
		page, err := j.st.ListPayments(ctx, q)
		if err != nil {
			return ended, err
		}
		for _, p := range page.Payments {
			v, err := ViewOf(p)
			if err != nil {
				return ended, err
			}
			v.State, v.Reason = StateFailed, ReasonGatewayRestarted
			v.Version++
			v.UpdatedAt = now.UTC()
			endView(&v)
			if err := j.Save(ctx, v); err != nil {
				return ended, err
			}
			j.auditEnded(ctx, v)
			ended = append(ended, v)
		}
		if page.Next == "" {
			return ended, nil
		}
		q.Cursor = page.Next
	}
}

// auditEnded writes the session.ended record of a payment that ended with
// its gateway: its trail stopped at what the dead process last wrote.
func (j *Journal) auditEnded(ctx context.Context, v View) {
	if j.audit == nil {
		return
	}
	r := audit.Record{Actor: actorSystem, Event: audit.EventSessionEnded, Outcome: audit.Failure,
		CallID: v.CallID, PaymentID: v.ID, State: string(v.State), Reason: audit.ReasonGatewayRestarted}
	if _, err := j.audit.Append(ctx, r); err != nil {
		j.log.Error("audit record not written", zap.String("payment_id", v.ID), zap.Error(err))
	}
}

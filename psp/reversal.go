package psp

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/moov-io/iso8583"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/store"
)

// Reversal is what the queue keeps of a transaction to reverse: exactly
// what a 0400 needs to identify the original, and no card data. The 0400
// carries no PAN (field 2): the acquirer finds the original by field 90
// (original MTI, STAN, transmission date and time) with the RRN (37),
// terminal (41) and merchant (42). So the PAN is never written to disk.
// The JSON form is how a previous version queued it in files (see
// migrateStateDir).
type Reversal struct {
	OrigMTI      string    `json:"orig_mti"`
	STAN         string    `json:"stan"`         // the original's field 11
	RRN          string    `json:"rrn"`          // the original's field 37
	Transmission string    `json:"transmission"` // the original's field 7, MMDDhhmmss UTC
	LocalTime    string    `json:"local_time"`   // field 12
	LocalDate    string    `json:"local_date"`   // field 13
	ProcCode     string    `json:"proc_code"`    // field 3
	Amount       int64     `json:"amount"`
	Currency     string    `json:"currency"` // numeric, field 49
	Terminal     string    `json:"terminal"`
	Merchant     string    `json:"merchant"`
	Reference    string    `json:"reference,omitempty"` // the request's MerchantRef: for the audit trail
	Reason       string    `json:"reason"`              // why: psp_timeout, psp_connection_lost, psp_bad_response
	RevSTAN      string    `json:"rev_stan"`            // the 0400's own field 11, kept for its repeats
	Attempts     int       `json:"attempts"`            // sends not acknowledged: the next is a repeat (0401)
	Created      time.Time `json:"created"`
}

func (r *Reversal) id() string { return r.STAN + "-" + r.Transmission }

// aheadOwner holds the intents this connector writes, apart from the
// leases of its reversal worker: should an intent's lease run out before
// its answer is handled and the worker take it, clearing the intent must
// fail (the reversal is on its way), not remove what the worker sends.
func (x *ISO) aheadOwner() string { return x.owner + "-ahead" }

// writeIntent queues the reversal of a request about to leave, leased to
// this connector until the request's deadline plus LeaseMargin: the
// write-ahead intent. Until then no other gateway sends it; if this
// process dies before the answer, the lease runs out and whichever
// gateway polls next (this one restarted, or another on the database)
// sends it, with the reason it was written with, psp_connection_lost.
func (x *ISO) writeIntent(ctx context.Context, rev *Reversal, deadline time.Time) error {
	r := rev.toStore()
	r.LeaseOwner, r.LeaseUntil = x.aheadOwner(), deadline.Add(x.cfg.LeaseMargin)
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	ok, err := x.st.EnqueueReversal(ctx, r)
	if err == nil && !ok {
		err = fmt.Errorf("a reversal of STAN %s at %s is queued already", rev.STAN, rev.Transmission)
	}
	return err
}

// clearIntent removes the intent of a request that got a definite answer:
// there is nothing to reverse. It fails with store.ErrNotLeased when the
// lease ran out first and another gateway (or this one) took the intent
// to send the reversal.
func (x *ISO) clearIntent(rev *Reversal) error {
	ctx, cancel := dbContext()
	defer cancel()
	return x.st.AckReversal(ctx, rev.id(), x.aheadOwner())
}

// reverse turns the intent of a request without a definite answer into
// a reversal due now, with the reason, and wakes the worker. When the
// store cannot be reached, the intent stays as it is, and is reversed
// when its lease runs out.
func (x *ISO) reverse(rev *Reversal, reason string) {
	ctx, cancel := dbContext()
	defer cancel()
	if err := x.st.ReleaseReversal(ctx, rev.id(), x.aheadOwner(), reason, x.now()); err != nil {
		lvl := zap.ErrorLevel
		if errors.Is(err, store.ErrNotLeased) {
			lvl = zap.WarnLevel // taken by the worker of a gateway after its lease: sent already
		}
		x.log.Log(lvl, "reversal left as written ahead: it goes out when its lease runs out",
			zap.String("stan", rev.STAN), zap.String("reason", reason), zap.Error(err))
	}
	x.kickReversals()
}

func (x *ISO) kickReversals() {
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// PendingReversals returns what the queue holds, oldest first: reversals
// waiting to be sent or acknowledged, and the write-ahead intents of
// requests in flight, on every gateway that shares the store.
func (x *ISO) PendingReversals() ([]Reversal, error) {
	ctx, cancel := dbContext()
	defer cancel()
	rs, err := x.st.ListReversals(ctx)
	out := make([]Reversal, len(rs))
	for i, r := range rs {
		out[i] = fromStore(r)
	}
	return out, err
}

// reversalLoop sends the queue's due reversals, oldest first, whenever
// it is kicked (a new reversal, a sign-on) and every ReversalBackoff:
// reversals come due on their own (a retry's time, the lease of a
// gateway that died), and other gateways queue them too.
func (x *ISO) reversalLoop() {
	defer x.wg.Done()
	poll := time.NewTicker(x.cfg.ReversalBackoff)
	defer poll.Stop()
	for {
		x.sendDueReversals()
		select {
		case <-x.done:
			return
		case <-x.kick:
		case <-poll.C:
		}
	}
}

// sendDueReversals leases due reversals one at a time and sends each,
// until none is due or one is not acknowledged. One at a time, so that a
// lease is held only while its reversal is on the wire.
func (x *ISO) sendDueReversals() {
	for {
		select {
		case <-x.done:
			return
		default:
		}
		if !x.pool.IsUp() {
			return // a sign-on kicks the loop
		}
		ctx, cancel := dbContext()
		rs, err := x.st.LeaseReversals(ctx, x.owner, 1, x.cfg.Timeout+x.cfg.LeaseMargin)
		cancel()
		if err != nil {
			x.log.Error("reading the reversal queue", zap.Error(err))
			return
		}
		if len(rs) == 0 {
			return
		}
		if !x.sendLeased(fromStore(rs[0])) {
			return
		}
	}
}

// sendLeased sends a reversal this connector leased and records the
// outcome in the store. It reports whether the acquirer acknowledged.
func (x *ISO) sendLeased(r Reversal) bool {
	err := x.sendReversal(&r)
	ctx, cancel := dbContext()
	defer cancel()
	if errors.Is(err, ErrUnavailable) {
		// Nothing left: not an attempt, and not a reason to wait longer
		// than for a connection.
		if err := x.st.ReleaseReversal(ctx, r.id(), x.owner, r.Reason, x.now().Add(x.cfg.ReversalBackoff)); err != nil {
			x.log.Error("releasing a reversal", zap.String("stan", r.STAN), zap.Error(err))
		}
		return false
	}
	if err != nil {
		d := reversalDelay(x.cfg, r.Attempts+1)
		x.log.Warn("reversal not acknowledged, will retry", zap.String("stan", r.STAN), zap.String("rrn", r.RRN),
			zap.Int("attempts", r.Attempts+1), zap.Duration("backoff", d), zap.String("error", err.Error()))
		if err := x.st.RetryReversal(ctx, r.id(), x.owner, x.now().Add(d)); err != nil {
			x.log.Error("recording a reversal attempt", zap.String("stan", r.STAN), zap.Error(err))
		}
		return false
	}
	if err := x.st.AckReversal(ctx, r.id(), x.owner); err != nil {
		// Still queued: sent again, as a repeat the acquirer answers
		// again, when the lease runs out.
		x.log.Error("removing an acknowledged reversal", zap.String("stan", r.STAN), zap.Error(err))
	}
	x.log.Info("reversal acknowledged", zap.String("stan", r.STAN), zap.String("rrn", r.RRN), zap.String("reason", r.Reason))
	if x.cfg.OnReversal != nil {
		x.cfg.OnReversal(r)
	}
	return true
}

// reversalDelay is the wait after the attempts-th unacknowledged send of
// a reversal: ReversalBackoff doubling up to MaxReversalBackoff, for as
// long as it takes. No jitter: an operator reads MaxReversalBackoff as the
// longest a reversal waits (rounded up to the next poll).
func reversalDelay(cfg Config, attempts int) time.Duration {
	d := cfg.ReversalBackoff
	for i := 1; i < attempts && d < cfg.MaxReversalBackoff; i++ {
		d *= 2
	}
	return min(d, cfg.MaxReversalBackoff)
}

var errNotAcknowledged = errors.New("reversal not acknowledged")

// sendReversal sends one 0400 (0401 when repeated) and waits for its 0410.
// It carries no PAN: field 90 and the RRN identify the original.
func (x *ISO) sendReversal(r *Reversal) error {
	conn, err := x.pool.Get()
	if err != nil {
		return ErrUnavailable
	}
	mti := "0400"
	if r.Attempts > 0 {
		mti = "0401"
	}
	m := iso8583.NewMessage(Spec)
	m.MTI(mti)
	fields := map[int]string{
		fProcCode:     r.ProcCode,
		fAmount:       strconv.FormatInt(r.Amount, 10),
		fTransmission: x.now().UTC().Format("0102150405"),
		fSTAN:         r.RevSTAN,
		fLocalTime:    r.LocalTime,
		fLocalDate:    r.LocalDate,
		fRRN:          r.RRN,
		fTerminal:     r.Terminal,
		fMerchant:     r.Merchant,
		fCurrency:     r.Currency,
		// Original MTI, STAN, transmission date and time, then acquiring
		// and forwarding institution ids, zero when not used.
		fOriginal: r.OrigMTI + r.STAN + r.Transmission + "00000000000" + "00000000000",
	}
	for id, v := range fields {
		if err := m.Field(id, v); err != nil {
			return fmt.Errorf("reversal field %d: %w", id, err)
		}
	}
	resp, err := conn.Send(m)
	if err != nil {
		return errors.New(safeText(err))
	}
	defer Wipe(resp)
	rmti, _ := resp.GetMTI()
	rc, _ := resp.GetString(fRespCode)
	// 25: the acquirer has no such original, so there is nothing to undo.
	if rmti != mti[:2]+"1"+mti[3:] || (rc != "00" && rc != "25") {
		return fmt.Errorf("%w: %s %q", errNotAcknowledged, sanitizeMTI(rmti), sanitizeCode(rc))
	}
	return nil
}

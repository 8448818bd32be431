package psp

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/moov-io/iso8583"
	"go.uber.org/zap"
)

// reverse puts a reversal of the original in rev in the durable queue and
// wakes the worker. Queueing comes before anything else so that a crash
// right after a timeout still reverses on the next start.
func (x *ISO) reverse(rev *Reversal, reason string) {
	rev.Reason = reason
	stan, err := x.tr.nextSTAN()
	if err != nil {
		x.log.Error("reversal not queued: no STAN", zap.String("stan", rev.STAN), zap.Error(err))
		return
	}
	rev.RevSTAN = stan
	if err := x.q.put(rev); err != nil {
		// The one case a reversal can be lost: the disk refuses it. Say
		// so loudly and still try once now.
		x.log.Error("reversal not queued", zap.String("stan", rev.STAN), zap.Error(err))
	}
	x.kickReversals()
}

func (x *ISO) kickReversals() {
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// PendingReversals returns what the queue holds, oldest first.
func (x *ISO) PendingReversals() ([]Reversal, error) {
	rs, err := x.q.list()
	out := make([]Reversal, len(rs))
	for i, r := range rs {
		out[i] = *r
	}
	return out, err
}

// reversalLoop sends every queued reversal until the acquirer acknowledges
// it, oldest first, backing off exponentially while it cannot. A kick (a
// new reversal, a sign-on) ends a wait early but does not reset the
// backoff: only a round in which the queue drained does.
func (x *ISO) reversalLoop() {
	defer x.wg.Done()
	b := reversalSchedule(x.cfg)
	for {
		var wait <-chan time.Time
		if r, err := x.sendPendingReversals(); err != nil {
			d := b.NextBackOff()
			if r != nil {
				x.log.Warn("reversal not acknowledged, will retry", zap.String("stan", r.STAN), zap.String("rrn", r.RRN),
					zap.Int("attempts", r.Attempts), zap.Duration("backoff", d), zap.String("error", err.Error()))
			}
			wait = time.After(d)
		} else {
			b.Reset()
		}
		select {
		case <-x.done:
			return
		case <-x.kick:
		case <-wait:
		}
	}
}

// reversalSchedule is the waits between rounds that left a reversal
// unacknowledged: ReversalBackoff doubling up to MaxReversalBackoff, for
// as long as it takes. No jitter: there is one worker per gateway, and an
// operator reads MaxReversalBackoff as the longest a reversal waits.
func reversalSchedule(cfg Config) *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(cfg.ReversalBackoff),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0),
		backoff.WithMaxInterval(cfg.MaxReversalBackoff),
		backoff.WithMaxElapsedTime(0),
	)
}

// sendPendingReversals sends what the queue holds, oldest first, up to the
// first the acquirer does not acknowledge, which it returns with the
// error. A nil reversal with an error: the queue could not be read.
func (x *ISO) sendPendingReversals() (*Reversal, error) {
	pending, err := x.q.list()
	if err != nil {
		x.log.Error("reading reversal queue", zap.Error(err))
		return nil, err
	}
	for _, r := range pending {
		select {
		case <-x.done:
			return nil, nil
		default:
		}
		if err := x.sendReversal(r); err != nil {
			r.Attempts++
			if perr := x.q.put(r); perr != nil {
				x.log.Error("updating reversal", zap.String("stan", r.STAN), zap.Error(perr))
			}
			return r, err
		}
		if err := x.q.remove(r); err != nil {
			x.log.Error("removing acknowledged reversal", zap.String("stan", r.STAN), zap.Error(err))
		}
		x.log.Info("reversal acknowledged", zap.String("stan", r.STAN), zap.String("rrn", r.RRN), zap.String("reason", r.Reason))
		if x.cfg.OnReversal != nil {
			x.cfg.OnReversal(*r)
		}
	}
	return nil, nil
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

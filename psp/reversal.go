package psp

import (
	"errors"
	"fmt"
	"strconv"
	"time"

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
// it, oldest first, backing off exponentially while it cannot.
func (x *ISO) reversalLoop() {
	defer x.wg.Done()
	backoff := x.cfg.ReversalBackoff
	for {
		failed := false
		pending, err := x.q.list()
		if err != nil {
			x.log.Error("reading reversal queue", zap.Error(err))
			failed = true
		}
		for _, r := range pending {
			select {
			case <-x.done:
				return
			default:
			}
			if err := x.sendReversal(r); err != nil {
				failed = true
				r.Attempts++
				if perr := x.q.put(r); perr != nil {
					x.log.Error("updating reversal", zap.String("stan", r.STAN), zap.Error(perr))
				}
				x.log.Warn("reversal not acknowledged, will retry", zap.String("stan", r.STAN), zap.String("rrn", r.RRN),
					zap.Int("attempts", r.Attempts), zap.Duration("backoff", backoff), zap.String("error", err.Error()))
				break
			}
			if err := x.q.remove(r); err != nil {
				x.log.Error("removing acknowledged reversal", zap.String("stan", r.STAN), zap.Error(err))
			}
			x.log.Info("reversal acknowledged", zap.String("stan", r.STAN), zap.String("rrn", r.RRN), zap.String("reason", r.Reason))
			if x.cfg.OnReversal != nil {
				x.cfg.OnReversal(*r)
			}
		}
		var wait <-chan time.Time
		if failed {
			t := time.NewTimer(backoff)
			wait = t.C
			backoff = min(backoff*2, x.cfg.MaxReversalBackoff)
		} else {
			backoff = x.cfg.ReversalBackoff
		}
		select {
		case <-x.done:
			return
		case <-x.kick:
		case <-wait:
		}
	}
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

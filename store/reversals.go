package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// Reversal is a queued reversal (ISO 8583 0400) of a transaction the
// acquirer may have authorized: what identifies the original, which is
// what psp.Reversal holds, and no card data. A 0400 needs no card number:
// field 90 (original MTI, STAN, transmission time) with the RRN, terminal
// and merchant identify the original.
type Reversal struct {
	OrigMTI      string // 4 digits
	STAN         string // the original's field 11, 6 digits
	RRN          string // the original's field 37, up to 12 characters
	Transmission string // the original's field 7, MMDDhhmmss UTC
	LocalTime    string // field 12, hhmmss
	LocalDate    string // field 13, MMDD
	ProcCode     string // field 3, 6 digits
	Amount       int64
	Currency     string // field 49, 3 digits
	Terminal     string // field 41, up to 8 characters
	Merchant     string // field 42, up to 15 characters
	Reference    string // the payment's merchant reference, for the audit trail (free text)
	Reason       string // why: a code ("psp_timeout")
	RevSTAN      string // the 0400's own field 11, kept for its repeats

	Attempts      int       // sends the acquirer did not acknowledge
	NextAttemptAt time.Time // due from then
	LeaseOwner    string    // set by LeaseReversals
	LeaseUntil    time.Time
	CreatedAt     time.Time
}

// ID is the reversal's key: the original's STAN and transmission time,
// which identify it at the acquirer.
func (r *Reversal) ID() string { return r.STAN + "-" + r.Transmission }

func (r *Reversal) check() error {
	return firstErr(
		syntax("reversals.orig_mti", r.OrigMTI, false, digitsN(4), "4 digits"),
		syntax("reversals.stan", r.STAN, false, digitsN(6), "6 digits"),
		// An RRN is 12 characters, often all digits, so it is held to
		// its syntax rather than searched: a search would refuse the one
		// RRN in ten whose digits pass Luhn. 12 characters leave no room
		// for the 13 to 19 digits of the usual card lengths.
		syntaxOnly("reversals.rrn", r.RRN, true, alnumN(12), "up to 12 letters or digits"),
		syntax("reversals.transmission", r.Transmission, false, digitsN(10), "10 digits (MMDDhhmmss)"),
		syntax("reversals.local_time", r.LocalTime, true, digitsN(6), "6 digits (hhmmss)"),
		syntax("reversals.local_date", r.LocalDate, true, digitsN(4), "4 digits (MMDD)"),
		syntax("reversals.proc_code", r.ProcCode, false, digitsN(6), "6 digits"),
		refuseCardAmount("reversals.amount", r.Amount),
		syntax("reversals.currency", r.Currency, false, digitsN(3), "3 digits"),
		syntax("reversals.terminal", r.Terminal, false, printableN(8), "1 to 8 printable characters"),
		syntax("reversals.merchant", r.Merchant, false, printableN(15), "1 to 15 printable characters"),
		freeText("reversals.reference", r.Reference, maxText),
		syntax("reversals.reason", r.Reason, false, validCode, "a reason code"),
		syntax("reversals.rev_stan", r.RevSTAN, true, digitsN(6), "6 digits"),
	)
}

func alnumN(n int) func(string) bool {
	return func(s string) bool {
		if len(s) == 0 || len(s) > n {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !isAlnum(s[i]) {
				return false
			}
		}
		return true
	}
}

const reversalColumns = `orig_mti, stan, rrn, transmission, local_time, local_date, proc_code, amount, currency,
	terminal, merchant, reference, reason, rev_stan, attempts, next_attempt_at, lease_owner, lease_until, created_at`

// EnqueueReversal queues r as given: due at NextAttemptAt (zero: now),
// with Attempts already made (a reversal moved from elsewhere keeps its
// count, so its next send is a repeat). With a LeaseOwner and LeaseUntil
// it is queued already leased to that owner: the write-ahead intent of a
// request still in flight, which no other node sends before the lease runs
// out, and which its owner clears (AckReversal) when a definite answer
// comes, or releases (ReleaseReversal) to be sent when none does. A
// reversal already queued (same STAN and transmission time) is left as it
// is and false is returned.
func (s *Store) EnqueueReversal(ctx context.Context, r Reversal) (bool, error) {
	if err := r.check(); err != nil {
		return false, err
	}
	if r.LeaseOwner != "" || !r.LeaseUntil.IsZero() {
		if err := checkLease(r.LeaseOwner, 1, time.Second); err != nil {
			return false, err
		}
		if r.LeaseUntil.IsZero() {
			return false, fmt.Errorf("%w: reversals.lease_until: zero with a lease owner", ErrInvalid)
		}
	}
	if r.Attempts < 0 {
		return false, fmt.Errorf("%w: reversals.attempts is negative", ErrInvalid)
	}
	now := s.now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.NextAttemptAt.IsZero() {
		r.NextAttemptAt = now
	}
	res, err := s.w.ExecContext(ctx, `INSERT INTO reversals (id, `+reversalColumns+`)
		VALUES (`+placeholders(1, 20)+`)
		ON CONFLICT (id) DO NOTHING`,
		r.ID(), r.OrigMTI, r.STAN, r.RRN, r.Transmission, r.LocalTime, r.LocalDate, r.ProcCode, r.Amount, r.Currency,
		r.Terminal, r.Merchant, r.Reference, r.Reason, r.RevSTAN, r.Attempts, nanos(r.NextAttemptAt),
		r.LeaseOwner, nanos(r.LeaseUntil), nanos(r.CreatedAt))
	if err != nil {
		return false, fmt.Errorf("store: queueing reversal %s: %w", r.ID(), err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// LeaseReversals leases up to max due reversals to owner for d, oldest
// first. A leased reversal is sent by its owner alone; if the owner
// neither acknowledges nor retries it before the lease runs out (it
// crashed), it is due again for any node. The lease is what makes exactly
// one node send each reversal at a time; a node that crashed after
// sending may leave it to be sent again, as a repeat (0401), which
// acquirers expect.
func (s *Store) LeaseReversals(ctx context.Context, owner string, max int, d time.Duration) ([]Reversal, error) {
	if err := checkLease(owner, max, d); err != nil {
		return nil, err
	}
	now := s.now()
	// As in ClaimOutbox: the outer conditions are evaluated again on the
	// row a concurrent lease changed, so one node wins each reversal.
	rows, err := s.w.QueryContext(ctx, `UPDATE reversals SET lease_owner = $1, lease_until = $2
		WHERE id IN (SELECT id FROM reversals WHERE next_attempt_at <= $3 AND lease_until <= $3
				ORDER BY created_at, id LIMIT $4)
			AND next_attempt_at <= $3 AND lease_until <= $3
		RETURNING `+reversalColumns, owner, nanos(now.Add(d)), nanos(now), max)
	if err != nil {
		return nil, fmt.Errorf("store: leasing reversals: %w", err)
	}
	out, err := scanReversals(rows)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Reversal) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// AckReversal removes a reversal the acquirer acknowledged. owner must
// hold its lease: ErrNotLeased otherwise (another node has leased it
// since, and will send it again).
func (s *Store) AckReversal(ctx context.Context, id, owner string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM reversals WHERE id = $1 AND lease_owner = $2`, id, owner)
	return leased(res, err, "acknowledging reversal "+id)
}

// RetryReversal records an unacknowledged send by owner, which must hold
// the lease, and releases the reversal until next.
func (s *Store) RetryReversal(ctx context.Context, id, owner string, next time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE reversals SET attempts = attempts + 1, next_attempt_at = $1,
		lease_owner = '', lease_until = 0 WHERE id = $2 AND lease_owner = $3`, nanos(next), id, owner)
	return leased(res, err, "retrying reversal "+id)
}

// ReleaseReversal hands a reversal owner holds back to the queue, due at
// next, with why it is to be sent, without counting an attempt: a
// write-ahead intent whose request got no definite answer (its first send
// is then an 0400), or a reversal its owner leased but could not send
// (no connection). ErrNotLeased when owner no longer holds it.
func (s *Store) ReleaseReversal(ctx context.Context, id, owner, reason string, next time.Time) error {
	if err := syntax("reversals.reason", reason, false, validCode, "a reason code"); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, `UPDATE reversals SET reason = $1, next_attempt_at = $2,
		lease_owner = '', lease_until = 0 WHERE id = $3 AND lease_owner = $4`, reason, nanos(next), id, owner)
	return leased(res, err, "releasing reversal "+id)
}

// ListReversals returns every queued reversal, oldest first.
func (s *Store) ListReversals(ctx context.Context) ([]Reversal, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+reversalColumns+` FROM reversals ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("store: listing reversals: %w", err)
	}
	return scanReversals(rows)
}

func scanReversals(rows *sql.Rows) ([]Reversal, error) {
	defer rows.Close()
	var out []Reversal
	for rows.Next() {
		var r Reversal
		var next, lease, created int64
		if err := rows.Scan(&r.OrigMTI, &r.STAN, &r.RRN, &r.Transmission, &r.LocalTime, &r.LocalDate, &r.ProcCode,
			&r.Amount, &r.Currency, &r.Terminal, &r.Merchant, &r.Reference, &r.Reason, &r.RevSTAN, &r.Attempts,
			&next, &r.LeaseOwner, &lease, &created); err != nil {
			return nil, fmt.Errorf("store: reading reversals: %w", err)
		}
		r.NextAttemptAt, r.LeaseUntil, r.CreatedAt = fromNanos(next), fromNanos(lease), fromNanos(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading reversals: %w", err)
	}
	return out, nil
}

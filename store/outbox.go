package store

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tonevault/tonevault/internal/pan"
)

// OutboxState is where an event is.
type OutboxState string

const (
	OutboxPending   OutboxState = "pending"   // to deliver, now or at NextAttemptAt
	OutboxDelivered OutboxState = "delivered" // the receiver acknowledged it
	OutboxDead      OutboxState = "dead"      // given up: attempts exhausted or refused for good
)

// OutboxEvent is one webhook event and its delivery.
type OutboxEvent struct {
	// ID is the event's id, the same on every attempt, so that the
	// receiver can drop duplicates ("evt_<payment>_<version>").
	ID        string
	Kind      string // "payment.approved"
	PaymentID string
	// Body is what is posted, byte for byte on every attempt (JSON).
	Body []byte
	// MaxAttempts: after this many failures the event is dead.
	MaxAttempts int

	State         OutboxState
	Attempts      int // failed attempts so far
	NextAttemptAt time.Time
	LeaseOwner    string
	LeaseUntil    time.Time
	LastStatus    int    // the receiver's last HTTP status; 0: none
	LastError     string // the last failure, card numbers masked
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func validEventID(s string) bool { return validName(s) && len(s) <= 128 }

// EnqueueOutbox adds an event to deliver now. Enqueueing an id that is
// already there changes nothing and reports false: a gateway that
// restarts and enqueues the same outcome again sends it once.
func (s *Store) EnqueueOutbox(ctx context.Context, e OutboxEvent) (bool, error) {
	if err := e.check(); err != nil {
		return false, err
	}
	var added bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var err error
		added, err = s.enqueueOutbox(ctx, tx, e)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store: enqueueing event %s: %w", e.ID, err)
	}
	return added, nil
}

func (e *OutboxEvent) check() error {
	err := firstErr(
		syntax("outbox.id", e.ID, false, validEventID, "an event id (letters, digits, '-' and '_')"),
		syntax("outbox.kind", e.Kind, false, validKind, "an event type"),
		syntax("outbox.payment_id", e.PaymentID, true, validID, "an id"),
		freeText("outbox.body", string(e.Body), maxBody),
	)
	if err != nil {
		return err
	}
	if e.MaxAttempts < 1 {
		return fmt.Errorf("%w: outbox.max_attempts %d: want at least 1", ErrInvalid, e.MaxAttempts)
	}
	return nil
}

// enqueueOutbox inserts a checked event in tx.
func (s *Store) enqueueOutbox(ctx context.Context, tx *sql.Tx, e OutboxEvent) (bool, error) {
	now := nanos(s.now())
	res, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, kind, payment_id, body, state, attempts, max_attempts,
			next_attempt_at, lease_owner, lease_until, last_status, last_error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '', 0, 0, '', $7, $7)
		ON CONFLICT (id) DO NOTHING`, e.ID, e.Kind, e.PaymentID, string(e.Body), string(OutboxPending), e.MaxAttempts, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// validKind: lowercase letters, '_' and '.', 1 to 64 ("payment.approved").
func validKind(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z') && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

const outboxColumns = `id, kind, payment_id, body, state, attempts, max_attempts, next_attempt_at,
	lease_owner, lease_until, last_status, last_error, created_at, updated_at`

// ClaimOutbox leases up to max pending events that are due to owner for
// d, oldest due first. While the lease lasts no other owner gets them;
// when it runs out (the owner crashed, or is slow), they are due again:
// delivery is at least once, and the receiver tells repeats by ID.
func (s *Store) ClaimOutbox(ctx context.Context, owner string, max int, d time.Duration) ([]OutboxEvent, error) {
	if err := checkLease(owner, max, d); err != nil {
		return nil, err
	}
	now := s.now()
	// One statement: the conditions are checked again on the row as it
	// is when the UPDATE reaches it, so of two nodes that picked the same
	// event only one changes it (PostgreSQL re-evaluates WHERE on a row a
	// concurrent transaction updated; SQLite has one writer).
	rows, err := s.w.QueryContext(ctx, `UPDATE outbox SET lease_owner = $1, lease_until = $2
		WHERE id IN (SELECT id FROM outbox WHERE state = $3 AND next_attempt_at <= $4 AND lease_until <= $4
				ORDER BY next_attempt_at, created_at, id LIMIT $5)
			AND state = $3 AND lease_until <= $4
		RETURNING `+outboxColumns, owner, nanos(now.Add(d)), string(OutboxPending), nanos(now), max)
	if err != nil {
		return nil, fmt.Errorf("store: claiming events: %w", err)
	}
	out, err := scanOutbox(rows)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b OutboxEvent) int {
		if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
	return out, nil
}

// MarkDelivered records that the receiver acknowledged the event with
// status. It holds whoever delivered it: a delivery is a fact even from an
// owner whose lease ran out.
func (s *Store) MarkDelivered(ctx context.Context, id string, status int) error {
	res, err := s.w.ExecContext(ctx, `UPDATE outbox SET state = $1, last_status = $2, lease_owner = '', lease_until = 0,
		updated_at = $3 WHERE id = $4 AND state <> $1`, string(OutboxDelivered), status, nanos(s.now()), id)
	if err != nil {
		return fmt.Errorf("store: marking event %s delivered: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err
	}
	var state string
	err = s.r.QueryRowContext(ctx, `SELECT state FROM outbox WHERE id = $1`, id).Scan(&state)
	if err == sql.ErrNoRows {
		return ErrNotFound
	}
	return err // already delivered: nil
}

// ReleaseOutbox gives up owner's lease on an event without counting an
// attempt (the owner is stopping in the middle of a delivery): it is due
// again at once. ErrNotLeased when owner does not hold it.
func (s *Store) ReleaseOutbox(ctx context.Context, id, owner string) error {
	res, err := s.w.ExecContext(ctx, `UPDATE outbox SET lease_owner = '', lease_until = 0, updated_at = $1
		WHERE id = $2 AND lease_owner = $3 AND state = $4`, nanos(s.now()), id, owner, string(OutboxPending))
	return leased(res, err, "releasing event "+id)
}

// DeliveryFailure is how an attempt failed.
type DeliveryFailure struct {
	Status int    // the receiver's HTTP status; 0 when none came
	Error  string // what went wrong, for operators (card numbers are masked, long text cut)
	// Permanent: trying again cannot help (the receiver refused the
	// event with a 4xx other than 408, 425 and 429): dead at once.
	Permanent bool
	// RetryAfter, when positive, replaces the backoff (a receiver's
	// Retry-After).
	RetryAfter time.Duration
}

// MarkFailed records a failed attempt by owner, which must hold the
// event's lease, and releases it: the event is due again after a backoff
// (Config.Outbox: Backoff doubling per failure up to MaxBackoff, with
// jitter), or dead once MaxAttempts attempts failed or the failure is
// permanent. It returns the event as it now is.
func (s *Store) MarkFailed(ctx context.Context, id, owner string, f DeliveryFailure) (OutboxEvent, error) {
	msg := string(pan.RedactBytes([]byte(f.Error)))
	if len(msg) > maxError {
		msg = msg[:maxError]
	}
	var out OutboxEvent
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var attempts, max int
		err := tx.QueryRowContext(ctx, `SELECT attempts, max_attempts FROM outbox WHERE id = $1 AND state = $2 AND lease_owner = $3`,
			id, string(OutboxPending), owner).Scan(&attempts, &max)
		if err == sql.ErrNoRows {
			return ErrNotLeased
		}
		if err != nil {
			return err
		}
		attempts++
		now := s.now()
		state, next := OutboxPending, now.Add(s.retryDelay(attempts, f.RetryAfter))
		if f.Permanent || attempts >= max {
			state, next = OutboxDead, time.Time{}
		}
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET state = $1, attempts = $2, next_attempt_at = $3,
				lease_owner = '', lease_until = 0, last_status = $4, last_error = $5, updated_at = $6
			WHERE id = $7 AND state = $8 AND lease_owner = $9 RETURNING `+outboxColumns,
			string(state), attempts, nanos(next), f.Status, msg, nanos(now), id, string(OutboxPending), owner)
		if err != nil {
			return err
		}
		evs, err := scanOutbox(rows)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return ErrNotLeased // claimed by another owner in between
		}
		out = evs[0]
		return nil
	})
	if err == ErrNotLeased {
		return OutboxEvent{}, err
	}
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("store: marking event %s failed: %w", id, err)
	}
	return out, nil
}

// retryDelay is the wait after the n-th failure: Backoff doubled per
// failure, capped at MaxBackoff, then a random point in its second half,
// so that events that failed together do not retry together. The attempt
// count lives in the database (any node may make the next attempt), so
// the delay is computed from it rather than kept in a backoff object.
func (s *Store) retryDelay(n int, retryAfter time.Duration) time.Duration {
	if retryAfter > 0 {
		return min(retryAfter, s.outbox.MaxBackoff)
	}
	d := s.outbox.Backoff << min(n-1, 30)
	if d <= 0 || d > s.outbox.MaxBackoff {
		d = s.outbox.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// OutboxQuery selects events for ListOutbox.
type OutboxQuery struct {
	State  OutboxState // required: OutboxDead lists the dead letters
	Limit  int         // 0: DefaultPageSize; at most MaxPageSize
	Cursor string
}

// OutboxPage is one page of events, newest first.
type OutboxPage struct {
	Events []OutboxEvent
	Next   string
}

// ListOutbox returns the events in a state, newest first, one page at a
// time: with OutboxDead, the dead letters an operator looks at.
func (s *Store) ListOutbox(ctx context.Context, q OutboxQuery) (OutboxPage, error) {
	limit, err := pageSize(q.Limit)
	if err != nil {
		return OutboxPage{}, err
	}
	switch q.State {
	case OutboxPending, OutboxDelivered, OutboxDead:
	default:
		return OutboxPage{}, fmt.Errorf("%w: outbox state %q", ErrInvalid, q.State)
	}
	query := `SELECT ` + outboxColumns + ` FROM outbox WHERE state = $1`
	args := []any{string(q.State)}
	if q.Cursor != "" {
		at, id, err := decodeCursor(cursorOutbox, q.Cursor)
		if err != nil {
			return OutboxPage{}, err
		}
		query += ` AND (created_at < $2 OR (created_at = $2 AND id < $3))`
		args = append(args, at, id)
	}
	query += fmt.Sprintf(` ORDER BY created_at DESC, id DESC LIMIT $%d`, len(args)+1)
	rows, err := s.r.QueryContext(ctx, query, append(args, limit+1)...)
	if err != nil {
		return OutboxPage{}, fmt.Errorf("store: listing events: %w", err)
	}
	evs, err := scanOutbox(rows)
	if err != nil {
		return OutboxPage{}, err
	}
	page := OutboxPage{Events: evs}
	if len(evs) > limit {
		page.Events = evs[:limit]
		last := evs[limit-1]
		page.Next = encodeCursor(cursorOutbox, nanos(last.CreatedAt), last.ID)
	}
	return page, nil
}

// GetOutbox returns one event, or ErrNotFound.
func (s *Store) GetOutbox(ctx context.Context, id string) (OutboxEvent, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+outboxColumns+` FROM outbox WHERE id = $1`, id)
	if err != nil {
		return OutboxEvent{}, fmt.Errorf("store: reading event %s: %w", id, err)
	}
	evs, err := scanOutbox(rows)
	if err != nil {
		return OutboxEvent{}, err
	}
	if len(evs) == 0 {
		return OutboxEvent{}, ErrNotFound
	}
	return evs[0], nil
}

// RequeueOutbox gives a dead event a new set of attempts, due now (an
// operator's redrive once the receiver is fixed). ErrNotFound when no
// dead event has this id.
func (s *Store) RequeueOutbox(ctx context.Context, id string) error {
	now := nanos(s.now())
	res, err := s.w.ExecContext(ctx, `UPDATE outbox SET state = $1, attempts = 0, next_attempt_at = $2, updated_at = $2
		WHERE id = $3 AND state = $4`, string(OutboxPending), now, id, string(OutboxDead))
	if err := leased(res, err, "requeueing event "+id); err == ErrNotLeased {
		return ErrNotFound
	} else if err != nil {
		return err
	}
	return nil
}

// PruneOutbox deletes delivered events last changed before t and
// returns how many.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM outbox WHERE state = $1 AND updated_at < $2`,
		string(OutboxDelivered), nanos(before))
	if err != nil {
		return 0, fmt.Errorf("store: pruning events: %w", err)
	}
	return res.RowsAffected()
}

func scanOutbox(rows *sql.Rows) ([]OutboxEvent, error) {
	defer rows.Close()
	var out []OutboxEvent
	for rows.Next() {
		var e OutboxEvent
		var body, state string
		var next, lease, created, updated int64
		if err := rows.Scan(&e.ID, &e.Kind, &e.PaymentID, &body, &state, &e.Attempts, &e.MaxAttempts, &next,
			&e.LeaseOwner, &lease, &e.LastStatus, &e.LastError, &created, &updated); err != nil {
			return nil, fmt.Errorf("store: reading events: %w", err)
		}
		e.Body, e.State = []byte(body), OutboxState(state)
		e.NextAttemptAt, e.LeaseUntil = fromNanos(next), fromNanos(lease)
		e.CreatedAt, e.UpdatedAt = fromNanos(created), fromNanos(updated)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading events: %w", err)
	}
	return out, nil
}

// checkLease checks a lease request's arguments.
func checkLease(owner string, max int, d time.Duration) error {
	if err := syntax("lease_owner", owner, false, validName, "1 to 64 letters, digits, '-' and '_'"); err != nil {
		return err
	}
	if max < 1 || max > MaxPageSize {
		return fmt.Errorf("%w: lease batch %d: want 1 to %d", ErrInvalid, max, MaxPageSize)
	}
	if d <= 0 {
		return fmt.Errorf("%w: lease duration %v: want more than 0", ErrInvalid, d)
	}
	return nil
}

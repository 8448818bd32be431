package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Payment is what the store keeps of a payment session: its state and
// outcome, masked. It mirrors capture.View without the per-field detail;
// it never holds card data (see the package documentation).
type Payment struct {
	ID     string // an audit.ValidID
	CallID string // an audit.ValidID; never changes
	State  string // a capture state ("collecting", "approved")
	// Final marks a state that no longer changes; LivePayment returns
	// payments that are not final.
	Final  bool
	Reason string // a reason code, or ""

	Amount      int64 // minor units
	Currency    string
	MerchantRef string // free text
	Description string // free text
	Merchant    string // free text

	Brand     string // "visa", once known
	MaskedPAN string // at most the first 6 and last 4 digits ("411111******1111")
	Token     string // Vault's token, once tokenized

	Outcome      string // approved, declined, failed, once submitted
	AuthCode     string // ISO 8583 field 38
	ResponseCode string // ISO 8583 field 39

	// What the authorization was sent with to say "telephone order", in
	// the brand's terms (psp.MOTO), once submitted: a dispute or an
	// interchange query asks how the payment was flagged.
	EntryMode     string // ISO 8583 field 22, 3 digits ("012")
	ConditionCode string // field 25, 2 digits ("08")
	Field60       string // field 60 (Visa: additional POS information), or ""
	Field61       string // field 61 (Mastercard: POS data), or ""

	// Correlation holds the call's correlation headers (name → value).
	// A header is written with the first version that carries it, and
	// its value is kept.
	Correlation map[string]string

	// Node names the gateway that held the session ("" when unnamed):
	// a gateway that restarts ends the live payments it held
	// (PaymentQuery.Node), and no other gateway's.
	Node string
	// Snapshot is the caller's own masked rendering of the payment (the
	// API's JSON View), kept so that it can be shown after a restart
	// exactly as before. It is free text to the store: searched for card
	// numbers like every other.
	Snapshot string

	// Version orders updates: an upsert with a version not above the
	// stored one changes nothing (capture.View.Version).
	Version   uint64
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time // zero: no expiry
}

func (p *Payment) check() error {
	err := firstErr(
		syntax("payments.id", p.ID, false, validID, "an id"),
		syntax("payments.call_id", p.CallID, false, validID, "an id"),
		syntax("payments.state", p.State, false, validCode, "a state"),
		syntax("payments.reason", p.Reason, true, validReason, "a reason code"),
		refuseCardAmount("payments.amount", p.Amount),
		syntax("payments.currency", p.Currency, false, validCurrency, "a currency code"),
		freeText("payments.merchant_ref", p.MerchantRef, maxText),
		freeText("payments.description", p.Description, maxText),
		freeText("payments.merchant", p.Merchant, maxText),
		syntax("payments.brand", p.Brand, true, validCode, "a brand"),
		syntax("payments.masked_pan", p.MaskedPAN, true, validMaskedPAN, "a masked card number (at most the first 6 and last 4 digits)"),
		syntax("payments.token", p.Token, true, validToken, "a token"),
		syntax("payments.outcome", p.Outcome, true, validCode, "an outcome"),
		syntax("payments.auth_code", p.AuthCode, true, validAuthCode, "an authorization code"),
		syntax("payments.response_code", p.ResponseCode, true, validResponseCode, "a response code"),
		syntax("payments.entry_mode", p.EntryMode, true, digitsN(3), "3 digits"),
		syntax("payments.condition_code", p.ConditionCode, true, digitsN(2), "2 digits"),
		syntax("payments.field_60", p.Field60, true, printableN(maxPrivateField), "up to 999 printable characters"),
		syntax("payments.field_61", p.Field61, true, printableN(maxPrivateField), "up to 999 printable characters"),
		syntax("payments.node", p.Node, true, validName, "a node name (letters, digits, '-' and '_')"),
		freeText("payments.snapshot", p.Snapshot, maxSnapshot),
	)
	if err != nil {
		return err
	}
	if p.Version > 1<<63-1 {
		return fmt.Errorf("%w: payments.version out of range", ErrInvalid)
	}
	if p.CreatedAt.IsZero() {
		return fmt.Errorf("%w: payments.created_at is zero", ErrInvalid)
	}
	for name, v := range p.Correlation {
		if err := syntax("payment_correlations.name", name, false, validName, "a header name"); err != nil {
			return err
		}
		if err := freeText("payment_correlations.value", v, maxText); err != nil {
			return err
		}
	}
	return nil
}

const paymentColumns = `id, call_id, state, final, reason, amount, currency, merchant_ref, description, merchant,
	brand, masked_pan, token, outcome, auth_code, response_code, entry_mode, condition_code, field_60, field_61,
	node, snapshot, version, created_at, updated_at, expires_at`

// UpsertPayment writes p: a new payment, or a newer version of a stored
// one. It reports whether it wrote anything: false when the store already
// holds this version or a later one, which makes updates that arrive out
// of order harmless. A payment never moves to another call: an upsert
// with another CallID writes nothing either.
//
// events are added to the webhook outbox in the same transaction, and
// only when p is written: the outcome and its notification are on disk
// together or not at all, and an event already queued (same id) is kept
// as it is (see EnqueueOutbox).
func (s *Store) UpsertPayment(ctx context.Context, p Payment, events ...OutboxEvent) (bool, error) {
	if err := p.check(); err != nil {
		return false, err
	}
	for _, e := range events {
		if err := e.check(); err != nil {
			return false, err
		}
	}
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = s.now()
	}
	var applied bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO payments (`+paymentColumns+`)
			VALUES (`+placeholders(1, 26)+`)
			ON CONFLICT (id) DO UPDATE SET
				state = excluded.state, final = excluded.final, reason = excluded.reason,
				amount = excluded.amount, currency = excluded.currency, merchant_ref = excluded.merchant_ref,
				description = excluded.description, merchant = excluded.merchant, brand = excluded.brand,
				masked_pan = excluded.masked_pan, token = excluded.token, outcome = excluded.outcome,
				auth_code = excluded.auth_code, response_code = excluded.response_code,
				entry_mode = excluded.entry_mode, condition_code = excluded.condition_code,
				field_60 = excluded.field_60, field_61 = excluded.field_61,
				node = excluded.node, snapshot = excluded.snapshot, version = excluded.version, updated_at = excluded.updated_at, expires_at = excluded.expires_at
			WHERE payments.version < excluded.version AND payments.call_id = excluded.call_id`,
			p.ID, p.CallID, p.State, bit(p.Final), p.Reason, p.Amount, p.Currency, p.MerchantRef, p.Description, p.Merchant,
			p.Brand, p.MaskedPAN, p.Token, p.Outcome, p.AuthCode, p.ResponseCode,
			p.EntryMode, p.ConditionCode, p.Field60, p.Field61, p.Node, p.Snapshot, int64(p.Version),
			nanos(p.CreatedAt), nanos(p.UpdatedAt), nanos(p.ExpiresAt))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n == 0 {
			return err
		}
		applied = true
		for _, name := range slices.Sorted(maps.Keys(p.Correlation)) {
			if _, err := tx.ExecContext(ctx, `INSERT INTO payment_correlations (payment_id, name, name_fold, value)
				VALUES ($1, $2, $3, $4) ON CONFLICT (payment_id, name_fold) DO NOTHING`,
				p.ID, name, strings.ToLower(name), p.Correlation[name]); err != nil {
				return err
			}
		}
		for _, e := range events {
			if _, err := s.enqueueOutbox(ctx, tx, e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("store: writing payment %s: %w", p.ID, err)
	}
	return applied, nil
}

// GetPayment returns the payment with this id, or ErrNotFound.
func (s *Store) GetPayment(ctx context.Context, id string) (Payment, error) {
	ps, err := s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id)
	if err != nil {
		return Payment{}, err
	}
	if len(ps) == 0 {
		return Payment{}, ErrNotFound
	}
	return ps[0], nil
}

// LivePayment returns the newest payment of the call that is not final
// (the one a reloaded widget should show), or ErrNotFound.
func (s *Store) LivePayment(ctx context.Context, callID string) (Payment, error) {
	ps, err := s.queryPayments(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE call_id = $1 AND final = 0 ORDER BY created_at DESC, id DESC LIMIT 1`, callID)
	if err != nil {
		return Payment{}, err
	}
	if len(ps) == 0 {
		return Payment{}, ErrNotFound
	}
	return ps[0], nil
}

// Page sizes of the List methods.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// PaymentQuery selects payments for ListPayments; empty fields match
// every payment.
type PaymentQuery struct {
	CallID string
	// Live selects the payments that are not final.
	Live bool
	// Node selects the payments of one gateway (Payment.Node).
	Node string
	// Correlation matches payments whose call carried every given header
	// (name compared without case) with exactly the given value. An
	// empty name matches the value in any header.
	Correlation map[string]string
	// Limit is the page size: 0 is DefaultPageSize, at most MaxPageSize.
	Limit int
	// Cursor is a previous page's Next: the page after it.
	Cursor string
}

// PaymentPage is one page of payments, newest first.
type PaymentPage struct {
	Payments []Payment
	// Next is the cursor of the following page; "" on the last page.
	Next string
}

// ListPayments returns the payments q selects, newest first, one page at
// a time. Pages are cursor-based: payments created while a client pages
// through never make it see one twice or skip one.
func (s *Store) ListPayments(ctx context.Context, q PaymentQuery) (PaymentPage, error) {
	limit, err := pageSize(q.Limit)
	if err != nil {
		return PaymentPage{}, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if q.CallID != "" {
		where = append(where, "p.call_id = "+arg(q.CallID))
	}
	if q.Live {
		where = append(where, "p.final = 0")
	}
	if q.Node != "" {
		where = append(where, "p.node = "+arg(q.Node))
	}
	for _, name := range slices.Sorted(maps.Keys(q.Correlation)) {
		cond := "c.value = " + arg(q.Correlation[name])
		if name != "" {
			cond += " AND c.name_fold = " + arg(strings.ToLower(name))
		}
		where = append(where, "EXISTS (SELECT 1 FROM payment_correlations c WHERE c.payment_id = p.id AND "+cond+")")
	}
	if q.Cursor != "" {
		at, id, err := decodeCursor(cursorPayments, q.Cursor)
		if err != nil {
			return PaymentPage{}, err
		}
		a, b := arg(at), arg(id)
		where = append(where, "(p.created_at < "+a+" OR (p.created_at = "+a+" AND p.id < "+b+"))")
	}
	query := `SELECT ` + prefixed("p.", paymentColumns) + ` FROM payments p`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY p.created_at DESC, p.id DESC LIMIT " + arg(limit+1)
	ps, err := s.queryPayments(ctx, query, args...)
	if err != nil {
		return PaymentPage{}, err
	}
	page := PaymentPage{Payments: ps}
	if len(ps) > limit {
		page.Payments = ps[:limit]
		last := ps[limit-1]
		page.Next = encodeCursor(cursorPayments, nanos(last.CreatedAt), last.ID)
	}
	return page, nil
}

// queryPayments runs a SELECT of paymentColumns and loads the rows'
// correlation headers.
func (s *Store) queryPayments(ctx context.Context, query string, args ...any) ([]Payment, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: reading payments: %w", err)
	}
	defer rows.Close()
	var out []Payment
	for rows.Next() {
		var p Payment
		var final int
		var version, created, updated, expires int64
		if err := rows.Scan(&p.ID, &p.CallID, &p.State, &final, &p.Reason, &p.Amount, &p.Currency, &p.MerchantRef,
			&p.Description, &p.Merchant, &p.Brand, &p.MaskedPAN, &p.Token, &p.Outcome, &p.AuthCode, &p.ResponseCode,
			&p.EntryMode, &p.ConditionCode, &p.Field60, &p.Field61, &p.Node, &p.Snapshot, &version, &created, &updated, &expires); err != nil {
			return nil, fmt.Errorf("store: reading payments: %w", err)
		}
		p.Final = final != 0
		p.Version = uint64(version)
		p.CreatedAt, p.UpdatedAt, p.ExpiresAt = fromNanos(created), fromNanos(updated), fromNanos(expires)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: reading payments: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	return out, s.loadCorrelations(ctx, out)
}

func (s *Store) loadCorrelations(ctx context.Context, ps []Payment) error {
	byID := make(map[string]*Payment, len(ps))
	ids := make([]any, len(ps))
	for i := range ps {
		byID[ps[i].ID] = &ps[i]
		ids[i] = ps[i].ID
	}
	rows, err := s.r.QueryContext(ctx, `SELECT payment_id, name, value FROM payment_correlations
		WHERE payment_id IN (`+placeholders(1, len(ids))+`)`, ids...)
	if err != nil {
		return fmt.Errorf("store: reading correlations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, name, value string
		if err := rows.Scan(&id, &name, &value); err != nil {
			return fmt.Errorf("store: reading correlations: %w", err)
		}
		if p := byID[id]; p != nil {
			if p.Correlation == nil {
				p.Correlation = map[string]string{}
			}
			p.Correlation[name] = value
		}
	}
	return rows.Err()
}

func pageSize(limit int) (int, error) {
	switch {
	case limit == 0:
		return DefaultPageSize, nil
	case limit < 0 || limit > MaxPageSize:
		return 0, fmt.Errorf("%w: page size %d: want 1 to %d", ErrInvalid, limit, MaxPageSize)
	}
	return limit, nil
}

// prefixed qualifies each column of a column list with prefix.
func prefixed(prefix, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = prefix + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}

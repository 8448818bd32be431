package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"
)

// IdempotencyState is what BeginIdempotent found.
type IdempotencyState int

const (
	// IdemNew: the key is the caller's; do the work, then FinishIdempotent
	// (or AbandonIdempotent when it failed and may be retried).
	IdemNew IdempotencyState = iota
	// IdemReplay: the key's first request finished; answer with its
	// Response.
	IdemReplay
	// IdemMismatch: the key was used for a different request.
	IdemMismatch
	// IdemBusy: the key's first request is still running.
	IdemBusy
)

// IdempotencyClaim asks for an idempotency key.
type IdempotencyClaim struct {
	// Key is the client's Idempotency-Key, scoped by the caller (with
	// the API key's name, say). The store keeps its SHA-256 only.
	Key string
	// Fingerprint is the SHA-256 of what was asked (the call id and the
	// decoded body): the same key with another request is a mismatch.
	Fingerprint []byte
	// TTL is how long the key and its answer are kept.
	TTL time.Duration
	// Hold bounds an unfinished claim: after it, another request with
	// the key takes it over (its first holder is taken to have crashed).
	// 0: the claim holds for the whole TTL.
	Hold time.Duration
}

// IdempotentResponse is the first answer to a key, replayed to retries.
type IdempotentResponse struct {
	Status   int
	Body     []byte
	Location string
}

// Idempotency is BeginIdempotent's answer.
type Idempotency struct {
	State IdempotencyState
	// Claim identifies this holder of the key (IdemNew): FinishIdempotent
	// and AbandonIdempotent take it, so that a holder whose claim was
	// taken over cannot overwrite the new holder's answer.
	Claim string
	// Response is the first answer (IdemReplay).
	Response IdempotentResponse
}

// BeginIdempotent claims c.Key for a request, or says why not. A key whose
// TTL ran out is claimed afresh.
func (s *Store) BeginIdempotent(ctx context.Context, c IdempotencyClaim) (Idempotency, error) {
	if c.Key == "" {
		return Idempotency{}, fmt.Errorf("%w: empty idempotency key", ErrInvalid)
	}
	if len(c.Fingerprint) != sha256.Size {
		return Idempotency{}, fmt.Errorf("%w: idempotency fingerprint is not a SHA-256", ErrInvalid)
	}
	if c.TTL <= 0 || c.Hold < 0 {
		return Idempotency{}, fmt.Errorf("%w: idempotency TTL must be positive and hold not negative", ErrInvalid)
	}
	key, fp := digest(c.Key), hex.EncodeToString(c.Fingerprint)
	var b [16]byte
	_, _ = rand.Read(b[:])
	claim := hex.EncodeToString(b[:])
	// A claim that loses a race to an AbandonIdempotent between its
	// INSERT and its SELECT tries again; twice is plenty.
	for range 3 {
		now := s.now()
		held := now.Add(c.TTL)
		if c.Hold > 0 {
			held = now.Add(c.Hold)
		}
		res, err := s.w.ExecContext(ctx, `INSERT INTO idempotency_keys
				(key_hash, fingerprint, claim, done, status, body, location, created_at, held_until, expires_at)
			VALUES ($1, $2, $3, 0, 0, '', '', $4, $5, $6)
			ON CONFLICT (key_hash) DO UPDATE SET
				fingerprint = excluded.fingerprint, claim = excluded.claim, done = 0, status = 0, body = '', location = '',
				created_at = excluded.created_at, held_until = excluded.held_until, expires_at = excluded.expires_at
			WHERE idempotency_keys.expires_at <= $4
				OR (idempotency_keys.done = 0 AND idempotency_keys.held_until <= $4 AND idempotency_keys.fingerprint = excluded.fingerprint)`,
			key, fp, claim, nanos(now), nanos(held), nanos(now.Add(c.TTL)))
		if err != nil {
			return Idempotency{}, fmt.Errorf("store: claiming idempotency key: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return Idempotency{}, fmt.Errorf("store: claiming idempotency key: %w", err)
		} else if n == 1 {
			return Idempotency{State: IdemNew, Claim: claim}, nil
		}
		var gotFP string
		var done, status int
		var body, location string
		err = s.w.QueryRowContext(ctx, `SELECT fingerprint, done, status, body, location FROM idempotency_keys WHERE key_hash = $1`, key).
			Scan(&gotFP, &done, &status, &body, &location)
		if err == sql.ErrNoRows {
			continue
		}
		if err != nil {
			return Idempotency{}, fmt.Errorf("store: reading idempotency key: %w", err)
		}
		switch {
		case gotFP != fp:
			return Idempotency{State: IdemMismatch}, nil
		case done == 0:
			return Idempotency{State: IdemBusy}, nil
		default:
			return Idempotency{State: IdemReplay, Response: IdempotentResponse{Status: status, Body: []byte(body), Location: location}}, nil
		}
	}
	return Idempotency{State: IdemBusy}, nil
}

// FinishIdempotent records the first answer to key, for replays. It
// returns ErrNotLeased when claim no longer holds the key.
func (s *Store) FinishIdempotent(ctx context.Context, key, claim string, r IdempotentResponse) error {
	err := firstErr(
		freeText("idempotency_keys.body", string(r.Body), maxBody),
		freeText("idempotency_keys.location", r.Location, maxText),
	)
	if err != nil {
		return err
	}
	if r.Status < 100 || r.Status > 599 {
		return fmt.Errorf("%w: idempotency_keys.status %d is not an HTTP status", ErrInvalid, r.Status)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE idempotency_keys SET done = 1, status = $1, body = $2, location = $3
		WHERE key_hash = $4 AND claim = $5 AND done = 0`, r.Status, string(r.Body), r.Location, digest(key), claim)
	return leased(res, err, "finishing idempotency key")
}

// AbandonIdempotent forgets a claimed key whose request failed, so that a
// retry runs afresh. It returns ErrNotLeased when claim no longer holds
// the key.
func (s *Store) AbandonIdempotent(ctx context.Context, key, claim string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE key_hash = $1 AND claim = $2 AND done = 0`,
		digest(key), claim)
	return leased(res, err, "abandoning idempotency key")
}

// ExpireIdempotencyKeys deletes the keys whose TTL ran out and returns
// how many.
func (s *Store) ExpireIdempotencyKeys(ctx context.Context) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, nanos(s.now()))
	if err != nil {
		return 0, fmt.Errorf("store: expiring idempotency keys: %w", err)
	}
	return res.RowsAffected()
}

// leased turns an UPDATE or DELETE that must touch one row into nil, or
// ErrNotLeased when it touched none.
func leased(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return ErrNotLeased
	}
	return nil
}

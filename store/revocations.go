package store

import (
	"context"
	"fmt"
	"time"
)

// RevokeToken records that a widget or agent token is revoked until it
// expires (until), after which it is refused anyway and the record can
// go. token is whatever identifies it to the caller (the token itself, or
// its id): the store keeps its SHA-256 only. Revoking twice keeps the
// later expiry.
func (s *Store) RevokeToken(ctx context.Context, token string, until time.Time) error {
	if token == "" {
		return fmt.Errorf("%w: empty token", ErrInvalid)
	}
	if until.IsZero() {
		return fmt.Errorf("%w: token_revocations.expires_at is zero", ErrInvalid)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO token_revocations (token_hash, revoked_at, expires_at) VALUES ($1, $2, $3)
		ON CONFLICT (token_hash) DO UPDATE SET expires_at = excluded.expires_at
		WHERE token_revocations.expires_at < excluded.expires_at`, digest(token), nanos(s.now()), nanos(until))
	if err != nil {
		return fmt.Errorf("store: revoking token: %w", err)
	}
	return nil
}

// TokenRevoked reports whether token is revoked and its revocation has
// not expired.
func (s *Store) TokenRevoked(ctx context.Context, token string) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM token_revocations WHERE token_hash = $1 AND expires_at > $2`,
		digest(token), nanos(s.now())).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("store: checking token revocation: %w", err)
	}
	return n > 0, nil
}

// ExpireRevocations deletes revocations of tokens that have expired
// anyway and returns how many.
func (s *Store) ExpireRevocations(ctx context.Context) (int64, error) {
	res, err := s.w.ExecContext(ctx, `DELETE FROM token_revocations WHERE expires_at <= $1`, nanos(s.now()))
	if err != nil {
		return 0, fmt.Errorf("store: expiring revocations: %w", err)
	}
	return res.RowsAffected()
}

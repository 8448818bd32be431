package store

import (
	"context"
	"fmt"
)

// AdvanceCounter adds by to the named counter and returns its new value.
// A counter starts at 0; atLeast raises it to that value first when it is
// lower (a count carried over from elsewhere). One statement does it, so
// gateways sharing a database each get a range of their own: a caller
// that adds n owns the values from the returned one minus n, exclusive,
// to the returned one.
func (s *Store) AdvanceCounter(ctx context.Context, name string, by, atLeast int64) (int64, error) {
	if err := syntax("counters.name", name, false, printableN(64), "1 to 64 printable characters"); err != nil {
		return 0, err
	}
	if by < 0 || atLeast < 0 {
		return 0, fmt.Errorf("%w: counter %s: negative step or floor", ErrInvalid, name)
	}
	var v int64
	// The casts give PostgreSQL the parameters' type, which it cannot
	// infer from an addition of two parameters.
	err := s.w.QueryRowContext(ctx, `INSERT INTO counters (name, value) VALUES ($1, CAST($2 AS BIGINT) + CAST($3 AS BIGINT))
		ON CONFLICT (name) DO UPDATE SET value =
			(CASE WHEN counters.value > CAST($3 AS BIGINT) THEN counters.value ELSE CAST($3 AS BIGINT) END) + CAST($2 AS BIGINT)
		RETURNING value`, name, by, atLeast).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("store: counter %s: %w", name, err)
	}
	return v, nil
}

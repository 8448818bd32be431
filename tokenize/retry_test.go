package tokenize

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/vault/api"
)

// These tests need no Vault: f stands in for a Vault call.

func TestRetryCount(t *testing.T) {
	unavailable := &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}
	tests := []struct {
		name    string
		retries int
		errs    []error // f's answers in turn; nil once they run out
		want    error   // nil, or the kind do's error must wrap
		calls   int
	}{
		{"ok at once", 2, nil, nil, 1},
		{"ok after two failures", 2, []error{unavailable, unavailable}, nil, 3},
		{"unavailable, no retries", 0, []error{unavailable, unavailable}, ErrUnavailable, 1},
		{"unavailable, retries spent", 3, []error{unavailable, unavailable, unavailable, unavailable, unavailable}, ErrUnavailable, 4},
		{"transport error is retried", 1, []error{errors.New("dial tcp: connection refused")}, nil, 2},
		{"denied is not retried", 3, []error{&api.ResponseError{StatusCode: 403}}, ErrDenied, 1},
		{"not found is not retried", 3, []error{&api.ResponseError{StatusCode: 404}}, ErrNotFound, 1},
		{"bad request is not retried", 3, []error{&api.ResponseError{StatusCode: 400}}, ErrVault, 1},
		{"invalid input is not retried", 3, []error{fmt.Errorf("%w: token", ErrInvalidInput)}, ErrInvalidInput, 1},
		{"closed is not retried", 3, []error{ErrClosed}, ErrClosed, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// observe sees every try, the failed ones with their error.
			var observed []error
			p := retryPolicy{timeout: time.Minute, retries: tt.retries, backoff: 0,
				observe: func(op string, _ time.Duration, err error) {
					if op != "op" {
						t.Errorf("observed op %q", op)
					}
					observed = append(observed, err)
				}}
			calls := 0
			err := p.do(context.Background(), "op", func(ctx context.Context) error {
				calls++
				if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > p.timeout {
					t.Errorf("try %d: deadline %v, %v; want one within %v", calls, dl, ok, p.timeout)
				}
				if calls <= len(tt.errs) {
					return tt.errs[calls-1]
				}
				return nil
			})
			if calls != tt.calls {
				t.Errorf("%d calls, want %d", calls, tt.calls)
			}
			if len(observed) != calls {
				t.Errorf("%d tries observed, want %d", len(observed), calls)
			} else if last := observed[calls-1]; (last == nil) != (err == nil) {
				t.Errorf("last observed try: %v; do's error: %v", last, err)
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			var pe *backoff.PermanentError
			if errors.As(err, &pe) {
				t.Errorf("err %v leaks the library's PermanentError", err)
			}
		})
	}
}

// TestRetryCancelStopsWaiting: a caller that gives up while do waits for
// the next try gets ErrUnavailable at once, not after the retries.
func TestRetryCancelStopsWaiting(t *testing.T) {
	tests := []struct {
		name string
		// cancel runs on f's first call: in f itself (the try ends with ctx)
		// or from another goroutine (do is waiting, or about to).
		inTry bool
	}{
		{"during the try", true},
		{"during the wait", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Without the cancel, ten retries at up to 2s each.
			p := retryPolicy{timeout: time.Minute, retries: MaxRetries, backoff: maxBackoff}
			first := make(chan struct{})
			go func() {
				if !tt.inTry {
					<-first
					cancel()
				}
			}()
			calls := 0
			err := p.do(ctx, "op", func(context.Context) error {
				calls++
				if calls == 1 {
					if tt.inTry {
						cancel()
					} else {
						close(first)
					}
				}
				return &api.ResponseError{StatusCode: 503}
			})
			if calls != 1 {
				t.Errorf("%d calls after the cancel, want 1", calls)
			}
			// The library answers a bare ctx error when the cancel comes
			// during the wait; callers test for ErrUnavailable.
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("err = %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestRetrySchedule: the n-th wait lies in [backoff·2ⁿ/2, backoff·2ⁿ],
// capped at maxBackoff, varies between calls, and stops after Retries.
func TestRetrySchedule(t *testing.T) {
	const slack = 2 * time.Nanosecond // the library's float rounding
	for _, base := range []time.Duration{0, 100 * time.Millisecond, 333 * time.Millisecond, maxBackoff} {
		t.Run(base.String(), func(t *testing.T) {
			p := retryPolicy{timeout: time.Second, retries: 7, backoff: base}
			firsts := map[time.Duration]bool{}
			for range 200 {
				b := p.schedule()
				b.Reset()
				nominal := base
				for n := range p.retries {
					d := b.NextBackOff()
					hi := min(nominal, maxBackoff)
					if d < hi/2-slack || d > hi+slack {
						t.Fatalf("wait %d = %v, want %v to %v", n, d, hi/2, hi)
					}
					if n == 0 {
						firsts[d] = true
					}
					nominal *= 2
				}
				if d := b.NextBackOff(); d != backoff.Stop {
					t.Fatalf("wait after %d retries = %v, want Stop", p.retries, d)
				}
			}
			if base > 0 && len(firsts) < 2 {
				t.Errorf("first wait always %v: no jitter", firsts)
			}
		})
	}
}

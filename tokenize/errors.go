package tokenize

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/hashicorp/vault/api"
)

// Errors, wrapped by what the package returns: test with errors.Is. No error
// text ever holds card data.
var (
	// ErrUnavailable: Vault is down, sealed, overloaded or too slow, after
	// the configured retries. The API should answer 503.
	ErrUnavailable = errors.New("tokenize: vault unavailable")
	// ErrNotFound: no such token.
	ErrNotFound = errors.New("tokenize: token not found")
	// ErrInvalidInput: a card number, expiry, brand, token or security code
	// that this package refuses (the error says which, never the value).
	ErrInvalidInput = errors.New("tokenize: invalid input")
	// ErrDenied: Vault refused the gateway's credentials (policy or login).
	ErrDenied = errors.New("tokenize: vault permission denied")
	// ErrVault: any other error answer from Vault.
	ErrVault = errors.New("tokenize: vault error")
	// ErrClosed: the Vault was closed.
	ErrClosed = errors.New("tokenize: closed")
)

// retryPolicy runs Vault calls with a per-try timeout and bounded retries
// with exponential backoff and jitter.
type retryPolicy struct {
	timeout time.Duration
	retries int
	backoff time.Duration
	observe func(op string, took time.Duration, err error) // Options.Observe, or nil
	// unavailable, if set, is called after a try that found Vault
	// unavailable, before the next: the HA follower moves to the active
	// node there.
	unavailable func(ctx context.Context)
}

// do runs f until it succeeds, fails with an error that retrying cannot
// fix, or the retries are spent. op names the call in errors.
func (p retryPolicy) do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	var last error
	try := func() error {
		tctx, cancel := context.WithTimeout(ctx, p.timeout)
		start := time.Now()
		err := f(tctx)
		took := time.Since(start)
		cancel()
		if err != nil {
			// The vault/api error's text holds the request URL: only
			// the classified one goes anywhere.
			err = classify(op, err)
		}
		if p.observe != nil {
			p.observe(op, took, err)
		}
		if err == nil {
			return nil
		}
		last = err
		if !errors.Is(last, ErrUnavailable) || ctx.Err() != nil {
			return backoff.Permanent(last)
		}
		if p.unavailable != nil {
			p.unavailable(ctx)
		}
		return last
	}
	err := backoff.Retry(try, backoff.WithContext(p.schedule(), ctx))
	// The caller gave up while we waited: the library answers ctx's error
	// alone, but callers test for ErrUnavailable.
	if cerr := ctx.Err(); cerr != nil && err == cerr && last != nil {
		return fmt.Errorf("%w (%v)", last, cerr)
	}
	return err
}

// schedule is the waits between tries: the n-th (from 0) is drawn from
// [backoff·2ⁿ/2, backoff·2ⁿ] and never exceeds maxBackoff, so that calls
// that failed together do not retry together, and a caller waiting on a
// dead Vault hears so within Retries × maxBackoff.
func (p retryPolicy) schedule() backoff.BackOff {
	// The library draws from centre ± factor·centre: a centre of 3/4 of
	// the nominal wait with factor 1/3 is the range [1/2, 1] of it.
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(p.backoff*3/4),
		backoff.WithRandomizationFactor(1.0/3),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(maxBackoff*3/4),
		backoff.WithMaxElapsedTime(0), // Retries bounds it, and ctx
	)
	return backoff.WithMaxRetries(b, uint64(max(p.retries, 0)))
}

// vaultError is an error from a Vault call, in words safe to log: the
// operation, the HTTP status and Vault's messages with long digit runs
// removed. It keeps the cause for errors.Is/As (ErrUnavailable etc.), but
// not the vault/api error, whose text holds the request URL.
type vaultError struct {
	kind   error
	op     string
	status int
	msg    string
}

func (e *vaultError) Error() string {
	var b strings.Builder
	b.WriteString(e.kind.Error())
	b.WriteString(": ")
	b.WriteString(e.op)
	if e.status != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.status)
	}
	if e.msg != "" {
		b.WriteString(": ")
		b.WriteString(e.msg)
	}
	return b.String()
}

func (e *vaultError) Unwrap() error { return e.kind }

// StatusCode is the HTTP status Vault answered, 0 if none.
func (e *vaultError) StatusCode() int { return e.status }

var digitRun = regexp.MustCompile(`[0-9][0-9 -]{10,}[0-9]`)

// scrub keeps digit runs that could be card data out of error text; Vault
// does not echo request data in its errors, this is defence in depth.
func scrub(s string) string {
	s = digitRun.ReplaceAllString(s, "[digits]")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// classify turns an error from the vault client into a *vaultError.
// Transport errors, timeouts, 5xx and 429 are ErrUnavailable: retrying
// later can fix them.
func classify(op string, err error) error {
	var ve *vaultError
	if errors.As(err, &ve) {
		return err
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		e := &vaultError{op: op, status: re.StatusCode, msg: scrub(strings.Join(re.Errors, "; "))}
		switch {
		case re.StatusCode >= 500 || re.StatusCode == http.StatusTooManyRequests:
			e.kind = ErrUnavailable
		case re.StatusCode == http.StatusForbidden || re.StatusCode == http.StatusUnauthorized:
			e.kind = ErrDenied
		case re.StatusCode == http.StatusNotFound:
			e.kind = ErrNotFound
		default:
			e.kind = ErrVault
		}
		return e
	}
	if errors.Is(err, ErrInvalidInput) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrClosed) {
		return err
	}
	// Everything else is the transport: refused, reset, timed out, cut
	// short. The vault/api text names the URL only; keep its gist.
	msg := "no answer"
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		msg = "timed out"
	case errors.Is(err, context.Canceled):
		msg = "canceled"
	case strings.Contains(err.Error(), "connection refused"):
		msg = "connection refused"
	}
	return &vaultError{kind: ErrUnavailable, op: op, msg: msg}
}

package tokenize

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/secret"
)

// LazyVault logs in to Vault in the background and keeps trying until it
// succeeds, so that the gateway starts, and masks calls, while Vault is
// down or sealed. Until it is connected, Tokenize answers ErrUnavailable,
// which the API turns into a 503 the agent can retry.
type LazyVault struct {
	mu     sync.RWMutex
	v      *Vault
	ready  chan struct{} // closed once v is set
	cancel context.CancelFunc
	done   chan struct{}
}

// Bounds of the background login's backoff, and of one login attempt.
const (
	lazyFirstRetry = time.Second
	lazyMaxRetry   = 30 * time.Second
	lazyAttempt    = 10 * time.Second
)

// Dial starts the background login with cfg and returns at once. Close
// stops it.
func Dial(cfg Config, opts Options) *LazyVault {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &LazyVault{ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(lazyFirstRetry),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(lazyMaxRetry),
		backoff.WithMaxElapsedTime(0), // until it works or Close
	)
	go func() {
		defer close(l.done)
		attempt := 0
		login := func() (*Vault, error) {
			attempt++
			actx, acancel := context.WithTimeout(ctx, lazyAttempt)
			defer acancel()
			return New(actx, cfg, opts)
		}
		notify := func(err error, wait time.Duration) {
			// The first failure is worth a warning; the rest repeat it.
			lvl := zap.DebugLevel
			if attempt == 1 || attempt%10 == 0 {
				lvl = zap.WarnLevel
			}
			log.Log(lvl, "vault not reachable yet; payments answer 503 until it is",
				zap.String("address", cfg.Address), zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
		}
		v, err := backoff.RetryNotifyWithData(login, backoff.WithContext(b, ctx), notify)
		if err != nil {
			return // Close
		}
		l.mu.Lock()
		l.v = v
		l.mu.Unlock()
		close(l.ready)
		log.Info("vault connected", zap.String("address", cfg.Address), zap.Int("attempt", attempt))
	}()
	return l
}

// Vault is the connected client, or nil before the login succeeded.
func (l *LazyVault) Vault() *Vault {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.v
}

// Wait returns the client once the login succeeded, or ctx's error.
func (l *LazyVault) Wait(ctx context.Context) (*Vault, error) {
	select {
	case <-l.ready:
		return l.Vault(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.done:
		select {
		case <-l.ready:
			return l.Vault(), nil
		default:
			return nil, errors.New("tokenize: vault login stopped")
		}
	}
}

// Tokenize is Vault.Tokenize once logged in, ErrUnavailable before.
func (l *LazyVault) Tokenize(ctx context.Context, pan, expiry secret.Secret, brand, merchant string) (Token, error) {
	v := l.Vault()
	if v == nil {
		return Token{}, fmt.Errorf("tokenize: not logged in to vault yet: %w", ErrUnavailable)
	}
	return v.Tokenize(ctx, pan, expiry, brand, merchant)
}

// Close stops the login loop and the token renewal.
func (l *LazyVault) Close() error {
	l.cancel()
	<-l.done
	if v := l.Vault(); v != nil {
		return v.Close()
	}
	return nil
}

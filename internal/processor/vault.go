package processor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/tokenize"
)

// LazyVault logs in to Vault in the background and keeps trying until it
// succeeds, so that the gateway starts, and masks calls, while Vault is
// down or sealed. Until it is connected, Tokenize answers
// tokenize.ErrUnavailable, which the API turns into a 503 the agent can
// retry.
type LazyVault struct {
	mu     sync.RWMutex
	v      *tokenize.Vault
	ready  chan struct{} // closed once v is set
	cancel context.CancelFunc
	done   chan struct{}
}

// Retry bounds for the background login.
const (
	firstRetry = time.Second
	maxRetry   = 30 * time.Second
)

// DialVault starts the background login.
func DialVault(cfg tokenize.Config, opts tokenize.Options, log *zap.Logger) *LazyVault {
	if log == nil {
		log = zap.NewNop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &LazyVault{ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		wait := firstRetry
		for attempt := 1; ; attempt++ {
			actx, acancel := context.WithTimeout(ctx, 10*time.Second)
			v, err := tokenize.New(actx, cfg, opts)
			acancel()
			if err == nil {
				l.mu.Lock()
				l.v = v
				l.mu.Unlock()
				close(l.ready)
				log.Info("vault connected", zap.String("address", cfg.Address), zap.Int("attempt", attempt))
				return
			}
			// The first failure is worth a warning; the rest repeat it.
			lvl := zap.DebugLevel
			if attempt == 1 || attempt%10 == 0 {
				lvl = zap.WarnLevel
			}
			log.Log(lvl, "vault not reachable yet; payments answer 503 until it is",
				zap.String("address", cfg.Address), zap.Int("attempt", attempt), zap.Duration("retry_in", wait), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(wait*2, maxRetry)
		}
	}()
	return l
}

// Vault is the connected client, or nil before the login succeeded.
func (l *LazyVault) Vault() *tokenize.Vault {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.v
}

// Wait returns the client once the login succeeded, or ctx's error.
func (l *LazyVault) Wait(ctx context.Context) (*tokenize.Vault, error) {
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
			return nil, errors.New("processor: vault login stopped")
		}
	}
}

// Tokenize implements Tokenizer.
func (l *LazyVault) Tokenize(ctx context.Context, pan, expiry secret.Secret, brand, merchant string) (tokenize.Token, error) {
	v := l.Vault()
	if v == nil {
		return tokenize.Token{}, fmt.Errorf("processor: not logged in to vault yet: %w", tokenize.ErrUnavailable)
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

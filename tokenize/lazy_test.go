package tokenize

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/vaultserver"
)

// TestLazyVaultDown: while Vault cannot be reached, tokenization is
// retryable (ErrUnavailable) and Wait gives up with its context; Close
// stops the login loop.
func TestLazyVaultDown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Address = "http://127.0.0.1:1"
	t.Setenv("VAULT_TOKEN", "not-a-token")
	l := Dial(cfg, Options{})
	if _, err := l.Tokenize(context.Background(), sec("4111111111111111"), sec("1230"), "visa", ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Tokenize before login: %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if v, err := l.Wait(ctx); v != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait = %v, %v", v, err)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	if v, err := l.Wait(context.Background()); v != nil || err == nil {
		t.Errorf("Wait after Close = %v, %v; want an error", v, err)
	}
}

// TestLazyVaultLogsInLater: a gateway started while Vault is down logs in
// by itself once Vault is back, and then tokenizes.
func TestLazyVaultLogsInLater(t *testing.T) {
	e := newEnv(t, vaultserver.Options{Persistent: true}, fastRetries)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111") })
	e.srv.Stop()
	l := Dial(e.cfg, Options{})
	defer l.Close()
	ctx := testCtx(t)
	if _, err := l.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", ""); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Tokenize while Vault is down: %v, want ErrUnavailable", e.noteErr(err))
	}
	e.srv.Restart()
	if _, err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait after Vault came back: %v", err)
	}
	tok, err := l.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "")
	if err != nil {
		t.Fatalf("Tokenize once logged in: %v", e.noteErr(err))
	}
	if tok.Value == "" {
		t.Error("empty token")
	}
}

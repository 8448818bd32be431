package tokenize

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/vaultserver"
)

func fastRetries(c *Config) {
	c.Retries = 1
	c.Backoff = 50 * time.Millisecond
	c.Timeout = 2 * time.Second
}

// TestUnavailableWhenDown: every call fails with ErrUnavailable while the
// server is down, without card data in the error.
func TestUnavailableWhenDown(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, fastRetries)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111") })
	ctx := testCtx(t)
	tok, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	calls := map[string]func() error{
		"Tokenize": func() error {
			_, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
			return err
		},
		"Rewrap": func() error { return e.v.Rewrap(ctx, tok.Value) },
		"Health": func() error { return e.v.Health(ctx) },
	}
	for name, call := range calls {
		err := e.noteErr(call())
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s with Vault down: %v, want ErrUnavailable", name, err)
		}
	}
	// A caller's deadline shorter than the retries wins.
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := e.v.Health(short); !errors.Is(e.noteErr(err), ErrUnavailable) {
		t.Errorf("Health with a short deadline: %v", err)
	}
}

// TestBackAfterOutage uses a persistent server (file storage): tokens made
// before the outage are found after it, sealing is ErrUnavailable too, and
// the same card still gets the same token.
func TestBackAfterOutage(t *testing.T) {
	e := newEnv(t, vaultserver.Options{Persistent: true}, fastRetries)
	t.Cleanup(func() { e.checkNoLeak(t, "5555555555554444") })
	ctx := testCtx(t)
	tok, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0628"), "mastercard", "m")
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Stop()
	if _, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0628"), "mastercard", "m"); !errors.Is(e.noteErr(err), ErrUnavailable) {
		t.Fatalf("Tokenize while down: %v, want ErrUnavailable", err)
	}
	e.srv.Restart()
	back, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0628"), "mastercard", "m")
	if err != nil || back.Value != tok.Value {
		t.Fatalf("Tokenize after restart: %q, %v; want %q", back.Value, e.noteErr(err), tok.Value)
	}
	if pan, exp := e.stored(t, tok.Value); pan != "5555555555554444" || exp != "0628" {
		t.Fatal("the token's record holds another card after the restart")
	}
	if err := e.v.Health(ctx); err != nil {
		t.Fatal(err)
	}
	// Sealed: 503 from Vault.
	if err := e.srv.Client.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0628"), "mastercard", "m"); !errors.Is(e.noteErr(err), ErrUnavailable) {
		t.Fatalf("Tokenize while sealed: %v, want ErrUnavailable", err)
	}
	if err := e.v.Health(ctx); !errors.Is(e.noteErr(err), ErrUnavailable) {
		t.Fatalf("Health while sealed: %v, want ErrUnavailable", err)
	}
	e.srv.Restart() // unseals
	again, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0628"), "mastercard", "m")
	if err != nil || again.Value != tok.Value {
		t.Fatalf("Tokenize after unseal: %q, %v; want %q", again.Value, e.noteErr(err), tok.Value)
	}
}

package tokenize

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/vaultserver"
)

// TestAppRoleLoginAndRenewal logs in with a role id and a secret id file,
// sees the token renewed past its TTL, then replaced by a new login when
// it reaches its max TTL, with calls working throughout.
func TestAppRoleLoginAndRenewal(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	ctx := testCtx(t)
	res, err := Setup(ctx, e.srv.Client, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Short lifetimes so the test sees both renewal and re-login.
	if _, err := e.srv.Client.Logical().Write("auth/approle/role/"+RoleName, map[string]any{
		"token_ttl": "4s", "token_max_ttl": "10s",
	}); err != nil {
		t.Fatal(err)
	}
	sidFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(sidFile, []byte(res.SecretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Auth = Auth{Method: "approle", RoleID: res.RoleID, SecretIDFile: sidFile, Mount: "approle"}
	v := e.gateway(t, cfg)
	first := v.client.Token()
	self, err := v.client.Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if pols, _ := self.TokenPolicies(); len(pols) != 1 || pols[0] != PolicyName {
		t.Fatalf("approle token policies %v, want only %s", pols, PolicyName)
	}
	tok, err := v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil {
		t.Fatal(err)
	}
	// Past the 4 s TTL: still the first token, so it was renewed.
	time.Sleep(6 * time.Second)
	if v.client.Token() == first {
		if _, err := v.client.Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("first token not renewed past its TTL: %v", err)
		}
	} else {
		t.Log("token already replaced at 6 s (renewal capped early); renewal not observed")
	}
	// Past the 10 s max TTL: a new login.
	deadline := time.Now().Add(40 * time.Second)
	for v.client.Token() == first && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if v.client.Token() == first {
		t.Fatal("no new login after the token's max TTL")
	}
	again, err := v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil || again.Value != tok.Value {
		t.Fatalf("Tokenize after re-login: %q, %v; want %q", again.Value, err, tok.Value)
	}
	if err := v.Health(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAppRoleBadSecretID(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	res, err := Setup(testCtx(t), e.srv.Client, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	sidFile := filepath.Join(t.TempDir(), "secret-id")
	if err := os.WriteFile(sidFile, []byte("not-the-secret-id"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.Auth = Auth{Method: "approle", RoleID: res.RoleID, SecretIDFile: sidFile, Mount: "approle"}
	_, err = New(testCtx(t), cfg, Options{})
	if err == nil {
		t.Fatal("login with a wrong secret id succeeded")
	}
	cfg.Auth.SecretIDFile = filepath.Join(t.TempDir(), "missing")
	if _, err := New(testCtx(t), cfg, Options{}); err == nil {
		t.Fatal("login with a missing secret id file succeeded")
	}
	cfg = e.cfg
	cfg.Auth.TokenFile = ""
	t.Setenv("VAULT_TOKEN", "")
	if _, err := New(testCtx(t), cfg, Options{}); !errors.Is(err, ErrDenied) {
		t.Fatalf("token method without a token: %v, want ErrDenied", err)
	}
}

func TestSkipVerifyRefused(t *testing.T) {
	t.Setenv("VAULT_SKIP_VERIFY", "true")
	_, err := New(testCtx(t), DefaultConfig(), Options{})
	if err == nil {
		t.Fatal("New with VAULT_SKIP_VERIFY=true succeeded")
	}
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/test/vaultserver"
	"github.com/tonevault/tonevault/tokenize"
)

// TestVaultSetup: against a real dev server, setup writes an AppRole login
// that the gateway's tokenize client can use, and prints the config for it.
func TestVaultSetup(t *testing.T) {
	srv := vaultserver.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "tv.yaml")
	if err := os.WriteFile(cfgPath, []byte("vault:\n  address: "+srv.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	var out, errb bytes.Buffer
	if code := run([]string{"vault", "setup", "--config", cfgPath, "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "method: approle") {
		t.Errorf("printed config:\n%s", out.String())
	}
	st, err := os.Stat(filepath.Join(dir, "secret-id"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("secret-id: %v %v", st, err)
	}
	role, _ := os.ReadFile(filepath.Join(dir, "role-id"))

	t.Setenv("VAULT_TOKEN", "")
	cfg := tokenize.DefaultConfig()
	cfg.Address = srv.Addr
	cfg.Auth.Method, cfg.Auth.RoleID, cfg.Auth.SecretIDFile = "approle", strings.TrimSpace(string(role)), filepath.Join(dir, "secret-id")
	v, err := tokenize.New(context.Background(), cfg, tokenize.Options{})
	if err != nil {
		t.Fatalf("login with the written AppRole: %v", err)
	}
	defer v.Close()
	pan, exp := secret.New([]byte("4111111111111111")), secret.New([]byte("1230"))
	defer pan.Wipe()
	tok, err := v.Tokenize(context.Background(), pan, exp, "visa", "")
	if err != nil || tok.Last4 != "1111" {
		t.Fatalf("tokenize: %+v %v", tok, err)
	}

	// Usage errors.
	t.Setenv("VAULT_TOKEN", "")
	errb.Reset()
	if code := run([]string{"vault", "setup", "--config", cfgPath}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "VAULT_TOKEN") {
		t.Errorf("without VAULT_TOKEN: exit %d %s", code, errb.String())
	}
}

// TestServeAuditSignedByVault: with audit.signer vault the gateway signs
// its checkpoints with the transit key it cannot export, and `audit verify
// --vault` checks them through Vault; a changed line still fails.
func TestServeAuditSignedByVault(t *testing.T) {
	srv := vaultserver.Start(t)
	dir := t.TempDir()
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	var out, errb bytes.Buffer
	base := filepath.Join(dir, "base.yaml")
	if err := os.WriteFile(base, []byte("vault:\n  address: "+srv.Addr+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"vault", "setup", "--config", base, "--out", dir}, &out, &errb); code != 0 {
		t.Fatalf("vault setup: exit %d: %s", code, errb.String())
	}
	cfgPath, trail := testConfigWith(t, dir, out.String(), "vault")
	// The gateway logs in with its AppRole, not the root token.
	t.Setenv("VAULT_TOKEN", "")
	serveOnce(t, cfgPath)

	t.Setenv("VAULT_ADDR", srv.Addr)
	t.Setenv("VAULT_TOKEN", srv.RootToken)
	out.Reset()
	errb.Reset()
	if code := run([]string{"audit", "verify", "--vault", trail}, &out, &errb); code != 0 || !strings.Contains(out.String(), "vault-transit:tonevault-transit/tonevault-audit") {
		t.Fatalf("verify --vault: exit %d\n%s%s", code, out.String(), errb.String())
	}
	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	forged := strings.Replace(string(b), `"outcome":"success"`, `"outcome":"failure"`, 1)
	if forged == string(b) {
		t.Fatal("nothing to change in the trail")
	}
	if err := os.WriteFile(trail, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if code := run([]string{"audit", "verify", "--vault", trail}, &out, &errb); code != 1 || !strings.Contains(out.String(), "FAILED") {
		t.Errorf("changed trail: exit %d\n%s", code, out.String())
	}
}

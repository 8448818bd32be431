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

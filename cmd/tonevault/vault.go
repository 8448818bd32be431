package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/tokenize"
)

func init() {
	register(command{
		name:    "vault",
		summary: "prepare a Vault server for the gateway",
		run: func(args []string, stdout, stderr io.Writer) int {
			return subcommands("vault", []command{
				{name: "setup", summary: "create the gateway's mounts, keys, policy and AppRole login", run: vaultSetup},
			}, args, stdout, stderr)
		},
	})
}

const vaultSetupUsage = `Usage: tonevault vault setup [--config FILE] [--out DIR]

Prepare the Vault server of the configuration's vault: section for the
gateway, with an administrator's token from VAULT_TOKEN: a transit mount
with the card-encryption (aes256-gcm96), lookup (hmac) and audit-signing
(ed25519) keys, none exportable; a KV v2 mount for tokens; the
least-privilege policy tonevault-gateway (configs/vault/); and an AppRole
role with a new secret id. Idempotent, except that each run issues a new
secret id.

It writes DIR/role-id and DIR/secret-id (mode 0600) and prints the vault:
lines that make the gateway log in with them. For development and tests;
production operators can apply configs/vault/ by hand (see its README).

Options:
  --config FILE  configuration read on top of the built-in default
  --out DIR      where to write role-id and secret-id (default .)
  --help         show this help

Exit status: 0 done, 1 Vault refused or could not be reached, 2 usage.
`

func vaultSetup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vault setup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfgPath := fs.String("config", "", "")
	out := fs.String("out", ".", "")
	if code, ok := parseOptions(fs, "vault setup", vaultSetupUsage, args, stdout, stderr); !ok {
		return code
	}
	cfg, err := configs.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault vault setup: %v\n", err)
		return 2
	}
	if os.Getenv("VAULT_TOKEN") == "" {
		fmt.Fprintln(stderr, "tonevault vault setup: VAULT_TOKEN is not set: give an administrator's token (for the dev server: tonevault-dev-root)")
		return 2
	}
	vc := vaultapi.DefaultConfig()
	vc.Address = cfg.Vault.Address
	if cfg.Vault.CAFile != "" {
		if err := vc.ConfigureTLS(&vaultapi.TLSConfig{CACert: cfg.Vault.CAFile}); err != nil {
			fmt.Fprintf(stderr, "tonevault vault setup: vault.ca_file: %v\n", err)
			return 2
		}
	}
	client, err := vaultapi.NewClient(vc)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault vault setup: %v\n", err)
		return 1
	}
	client.SetToken(os.Getenv("VAULT_TOKEN"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := tokenize.Setup(ctx, client, cfg.Vault)
	if err != nil {
		fmt.Fprintf(stderr, "tonevault vault setup: %v\n", err)
		return 1
	}
	if err := os.MkdirAll(*out, 0o700); err != nil {
		fmt.Fprintf(stderr, "tonevault vault setup: %v\n", err)
		return 1
	}
	roleFile, secretFile := filepath.Join(*out, "role-id"), filepath.Join(*out, "secret-id")
	for _, f := range []struct{ path, v string }{{roleFile, res.RoleID}, {secretFile, res.SecretID}} {
		if err := os.WriteFile(f.path, []byte(f.v+"\n"), 0o600); err != nil {
			fmt.Fprintf(stderr, "tonevault vault setup: %v\n", err)
			return 1
		}
	}
	abs, _ := filepath.Abs(secretFile)
	fmt.Fprintf(stdout, "vault:\n  address: %s\n  auth:\n    method: approle\n    role_id: %s\n    secret_id_file: %s\n", cfg.Vault.Address, res.RoleID, abs)
	return 0
}

package tokenize

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/internal/secret"
	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite configs/vault/tonevault-gateway.hcl from Policy(DefaultConfig())")

// Test cards only.
var testPANs = []string{
	"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
	"3530111333300000", "2223003122003222", "4242424242424242", "6011000990139424",
	"4000056655665556", "6250941006528599", "3056930009020004",
}

// fakeLookup stands in for a card's lookup key (64 hex digits).
func fakeLookup(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

func TestFormatCandidate(t *testing.T) {
	formats := []Format{
		{Kind: KindDigits, KeepFirst: 6, KeepLast: 4},
		{Kind: KindDigits, KeepFirst: 0, KeepLast: 4},
		{Kind: KindDigits, KeepFirst: 6, KeepLast: 4, Length: 16},
		{Kind: KindDigits, KeepFirst: 0, KeepLast: 4, Length: 19},
		{Kind: KindDigits, KeepFirst: 6, KeepLast: 0, Length: 17},
		{Kind: "", KeepFirst: 0, KeepLast: 0},
	}
	for _, f := range formats {
		for _, p := range testPANs {
			t.Run(f.id()+"/"+p[:6], func(t *testing.T) {
				pan := []byte(p)
				wantLen := f.Length
				if wantLen == 0 {
					wantLen = len(pan)
				}
				// 200 cards' first candidates, and 200 candidates of one
				// card.
				byCard, byN := map[string]bool{}, map[string]bool{}
				for i := 0; i < 200; i++ {
					for _, c := range []struct {
						lookup string
						n      int
						seen   map[string]bool
					}{{fakeLookup(i), 0, byCard}, {fakeLookup(0), i, byN}} {
						tok, err := f.candidate(pan, c.lookup, c.n)
						if err != nil {
							t.Fatal(err)
						}
						if len(tok) != wantLen || !allDigits([]byte(tok)) {
							t.Fatalf("token %q: want %d digits", tok, wantLen)
						}
						if tok[:f.KeepFirst] != p[:f.KeepFirst] || tok[len(tok)-f.KeepLast:] != p[len(p)-f.KeepLast:] {
							t.Fatalf("token %q does not keep first %d / last %d of the card", tok, f.KeepFirst, f.KeepLast)
						}
						if luhnValid([]byte(tok)) {
							t.Fatalf("token %q passes the Luhn check", tok)
						}
						if !validToken(tok) {
							t.Fatalf("validToken(%q) = false", tok)
						}
						if again, _ := f.candidate(pan, c.lookup, c.n); again != tok {
							t.Fatalf("candidate %d of one card: %q, then %q", c.n, tok, again)
						}
						c.seen[tok] = true
					}
				}
				// 200 draws from at least 10^4 values: a handful of
				// repeats at most, unless the middle does not depend on
				// the lookup key and the candidate's number.
				if len(byCard) < 180 || len(byN) < 180 {
					t.Errorf("%d distinct tokens for 200 cards, %d in 200 candidates of one card", len(byCard), len(byN))
				}
			})
		}
	}
}

// TestCandidateIsStable: a card's token is found at the path its
// candidates name, so the derivation must never change, or every stored
// token would be lost to its card (which would get a new one). These are
// the candidates as first released; a change must fail here.
func TestCandidateIsStable(t *testing.T) {
	lookup := fakeLookup(42)
	tests := []struct {
		f    Format
		pan  string
		n    int
		want string
	}{
		{Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4}, "4111111111111111", 0, "4111118065301111"},
		{Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4}, "4111111111111111", 1, "4111118919791111"},
		{Format{Kind: KindDigits, KeepFirst: 0, KeepLast: 4, Length: 19}, "378282246310005", 0, "2209170330390540005"},
		{Format{Kind: KindOpaque}, "4111111111111111", 0, "tok_bqrlzc6qhymvl6qcvczpw6ezne"},
	}
	for _, tt := range tests {
		if got, err := tt.f.candidate([]byte(tt.pan), lookup, tt.n); err != nil || got != tt.want {
			t.Errorf("%s candidate %d: %q, %v; want %q", tt.f.id(), tt.n, got, err, tt.want)
		}
	}
}

// TestCandidateFormatsApart: formats whose tokens look alike still give
// one card different tokens (the index of old kept them apart by format).
func TestCandidateFormatsApart(t *testing.T) {
	pan := []byte("4111111111111111")
	a, err := Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4}.candidate(pan, fakeLookup(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4, Length: 16}.candidate(pan, fakeLookup(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("formats digits-6-4-pan and digits-6-4-16: both %q", a)
	}
}

func TestFormatTooFewRandomDigits(t *testing.T) {
	f := Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4}
	_, err := f.candidate([]byte("4222222222222"), fakeLookup(0), 0) // 13-digit test Visa
	if !errors.Is(err, ErrInvalidInput) {
		t.Fatalf("err = %v, want ErrInvalidInput", err)
	}
	if strings.Contains(err.Error(), "4222222222222") {
		t.Fatal("error holds the card number")
	}
}

func TestOpaqueToken(t *testing.T) {
	f := Format{Kind: KindOpaque}
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := f.candidate([]byte("4111111111111111"), fakeLookup(i), 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok, OpaquePrefix) || len(tok) != opaqueLen || !validToken(tok) {
			t.Fatalf("bad opaque token %q", tok)
		}
		if strings.Contains(tok, "1111") {
			// base32 has no 0, 1, 8, 9: no card digits can show.
			t.Fatalf("opaque token %q holds card digits", tok)
		}
		seen[tok] = true
	}
	if len(seen) != 100 {
		t.Fatalf("%d distinct opaque tokens in 100", len(seen))
	}
}

func TestFormatValidate(t *testing.T) {
	tests := []struct {
		f  Format
		ok bool
	}{
		{Format{Kind: KindDigits, KeepFirst: 6, KeepLast: 4}, true},
		{Format{KeepFirst: 0, KeepLast: 4, Length: 16}, true},
		{Format{Kind: KindOpaque}, true},
		{Format{Kind: KindOpaque, KeepLast: 4}, false},
		{Format{Kind: "fpe"}, false},
		{Format{KeepFirst: 8, KeepLast: 4}, false},
		{Format{KeepFirst: 6, KeepLast: 5}, false},
		{Format{KeepFirst: 6, KeepLast: 4, Length: 15}, false},
		{Format{KeepFirst: 6, KeepLast: 4, Length: 20}, false},
	}
	for _, tt := range tests {
		if err := tt.f.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tt.f, err, tt.ok)
		}
	}
}

func TestValidToken(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"4111112345671111", !luhnValid([]byte("4111112345671111"))},
		{"4111111111111111", false}, // a card number (passes Luhn)
		{"", false},
		{"../../sys/policy", false},
		{"41111123456711a1", false},
		{"12345678901", false},
		{"12345678901234567890", false},
		{"tok_abcdefghijklmnopqrstuvwxyz", true},
		{"tok_abcdefghijklmnopqrstuvwxy1", false},
		{"tok_abcdefghijklmnopqrstuvwxy", false},
		{"TOK_abcdefghijklmnopqrstuvwxyz", false},
		{"tok_abcdefghijklmn/../stuvwxyz", false},
	}
	for _, tt := range tests {
		if got := validToken(tt.s); got != tt.ok {
			t.Errorf("validToken(%q) = %v, want %v", tt.s, got, tt.ok)
		}
	}
}

func TestCheckCard(t *testing.T) {
	tests := []struct {
		name       string
		pan, exp   string
		brand      string
		wantErrSub string
	}{
		{"ok", "4111111111111111", "1230", "visa", ""},
		{"ok6", "378282246310005", "122030", "amex", ""},
		{"short", "41111111111", "1230", "visa", "12 to 19"},
		{"letters", "4111x11111111111", "1230", "visa", "12 to 19"},
		{"luhn", "4111111111111112", "1230", "visa", "Luhn"},
		{"exp", "4111111111111111", "12/30", "visa", "expiry"},
		{"exp5", "4111111111111111", "12300", "visa", "expiry"},
		{"brand", "4111111111111111", "1230", "vi sa", "brand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkCard(sec(tt.pan), sec(tt.exp), tt.brand)
			if tt.wantErrSub == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidInput) || !strings.Contains(err.Error(), tt.wantErrSub) {
				t.Fatalf("err = %v, want ErrInvalidInput mentioning %q", err, tt.wantErrSub)
			}
			if strings.Contains(err.Error(), tt.pan) || strings.Contains(err.Error(), tt.exp) {
				t.Fatalf("error %q holds the input", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mod    func(c *Config)
		env    string // VAULT_SKIP_VERIFY
		errSub string
	}{
		{"default", func(c *Config) {}, "", ""},
		{"https+ca", func(c *Config) { c.Address = "https://vault.internal:8200"; c.CAFile = ca }, "", ""},
		{"approle", func(c *Config) { c.Auth = Auth{Method: "approle", RoleID: "r", SecretIDFile: "/x", Mount: "approle"} }, "", ""},
		{"insecure", func(c *Config) { c.Insecure = true }, "", "refused"},
		{"env skip verify", func(c *Config) {}, "true", "VAULT_SKIP_VERIFY"},
		{"env skip verify 1", func(c *Config) {}, "1", "VAULT_SKIP_VERIFY"},
		{"env skip verify junk", func(c *Config) {}, "maybe", "VAULT_SKIP_VERIFY"},
		{"env skip verify false", func(c *Config) {}, "false", ""},
		{"address", func(c *Config) { c.Address = "127.0.0.1:8200" }, "", "address"},
		{"ca missing", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "", "ca_file"},
		{"method", func(c *Config) { c.Auth.Method = "ldap" }, "", "method"},
		{"approle incomplete", func(c *Config) { c.Auth.Method = "approle" }, "", "role_id"},
		{"mount path", func(c *Config) { c.Transit.Mount = "transit/../sys" }, "", "transit.mount"},
		{"kv prefix", func(c *Config) { c.KV.Prefix = "" }, "", "kv.prefix"},
		{"hmac version", func(c *Config) { c.Transit.HMACKeyVersion = 0 }, "", "hmac_key_version"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "", "timeout"},
		{"retries", func(c *Config) { c.Retries = 100 }, "", "retries"},
		{"format", func(c *Config) { c.TokenFormat.KeepFirst = 3 }, "", "token_format"},
		{"merchant format", func(c *Config) { c.MerchantFormats = map[string]Format{"m1": {Kind: "x"}} }, "", "m1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("VAULT_SKIP_VERIFY", tt.env)
			c := DefaultConfig()
			tt.mod(&c)
			err := c.Validate()
			if tt.errSub == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.errSub)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		kind error
	}{
		{&api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, ErrUnavailable},
		{&api.ResponseError{StatusCode: 500}, ErrUnavailable},
		{&api.ResponseError{StatusCode: 429}, ErrUnavailable},
		{&api.ResponseError{StatusCode: 403, Errors: []string{"permission denied"}}, ErrDenied},
		{&api.ResponseError{StatusCode: 404}, ErrNotFound},
		{&api.ResponseError{StatusCode: 400, Errors: []string{"bad 4111111111111111 input"}}, ErrVault},
		{fmt.Errorf("Put \"http://127.0.0.1:1/v1/x\": dial tcp: connection refused"), ErrUnavailable},
	}
	for _, tt := range tests {
		err := classify("op", tt.err)
		if !errors.Is(err, tt.kind) {
			t.Errorf("classify(%v) = %v, want %v", tt.err, err, tt.kind)
		}
		if strings.Contains(err.Error(), "4111111111111111") || strings.Contains(err.Error(), "http://") {
			t.Errorf("classify(%v) = %q: holds digits or the URL", tt.err, err)
		}
	}
}

func TestPolicyFileInSync(t *testing.T) {
	path := filepath.Join("..", "configs", "vault", "tonevault-gateway.hcl")
	want := Policy(DefaultConfig())
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from Policy(DefaultConfig()); run: go test ./tokenize -run TestPolicyFileInSync -update", path)
	}
}

func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"4111112345671112", "tok_abcdefghijklmnopqrstuvwxyz", "../x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validToken(s) {
			return
		}
		// Whatever passes is safe as a KV path segment and is no card
		// number.
		if strings.ContainsAny(s, "/.%\\ ") || (allDigits([]byte(s)) && luhnValid([]byte(s))) {
			t.Fatalf("validToken(%q) = true", s)
		}
	})
}

// FuzzCandidate: for any valid card number and format, a digits token
// keeps only what the format says, fails Luhn and passes validToken;
// anything else is refused with an error, never a panic.
func FuzzCandidate(f *testing.F) {
	f.Add([]byte("4111111111111111"), uint8(6), uint8(4), uint8(0))
	f.Add([]byte("378282246310005"), uint8(0), uint8(4), uint8(19))
	f.Add([]byte("41111"), uint8(6), uint8(4), uint8(16))
	f.Fuzz(func(t *testing.T, pan []byte, first, last, length uint8) {
		fm := Format{Kind: KindDigits, KeepFirst: int(first), KeepLast: int(last), Length: int(length)}
		if fm.Validate() != nil {
			return
		}
		if checkCard(secret.Wrap(pan), sec("1230"), "") != nil {
			return
		}
		tok, err := fm.candidate(pan, fakeLookup(len(pan)), int(first))
		if err != nil {
			if !errors.Is(err, ErrInvalidInput) || strings.Contains(err.Error(), string(pan)) {
				t.Fatalf("candidate: %v", err)
			}
			return
		}
		if luhnValid([]byte(tok)) || !validToken(tok) || tok == string(pan) {
			t.Fatalf("token %q for a valid card", tok)
		}
		if tok[:fm.KeepFirst] != string(pan[:fm.KeepFirst]) || tok[len(tok)-fm.KeepLast:] != string(pan[len(pan)-fm.KeepLast:]) {
			t.Fatalf("token %q does not keep the card's first %d / last %d", tok, fm.KeepFirst, fm.KeepLast)
		}
	})
}

// TestConfigYAML: the keys documented in configs/vault/README.md decode
// into Config, over the defaults.
func TestConfigYAML(t *testing.T) {
	const doc = `
vault:
  address: https://vault.example.internal:8200
  ca_file: /etc/tonevault/vault-ca.pem
  auth:
    method: approle
    role_id: r-1
    secret_id_file: /etc/tonevault/secret-id
  transit:
    card_key: card2
  kv:
    prefix: gw1
  timeout: 3s
  retries: 4
  token_format:
    kind: digits
    keep_first: 0
    keep_last: 4
    length: 16
  merchant_formats:
    shop-7:
      kind: opaque
`
	var file struct {
		Vault Config `yaml:"vault"`
	}
	file.Vault = DefaultConfig()
	if err := yaml.Unmarshal([]byte(doc), &file); err != nil {
		t.Fatal(err)
	}
	c := file.Vault
	want := DefaultConfig()
	want.Address = "https://vault.example.internal:8200"
	want.CAFile = "/etc/tonevault/vault-ca.pem"
	want.Auth = Auth{Method: "approle", RoleID: "r-1", SecretIDFile: "/etc/tonevault/secret-id", Mount: "approle"}
	want.Transit.CardKey = "card2"
	want.KV.Prefix = "gw1"
	want.Timeout = 3 * time.Second
	want.Retries = 4
	want.TokenFormat = Format{Kind: KindDigits, KeepLast: 4, Length: 16}
	want.MerchantFormats = map[string]Format{"shop-7": {Kind: KindOpaque}}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("decoded\n%+v\nwant\n%+v", c, want)
	}
}

// TestClientWrapsNothingByDefault: the gateway never asks Vault to wrap an
// answer; the vault/api default would wrap every answer when
// VAULT_WRAP_TTL is set.
func TestClientWrapsNothingByDefault(t *testing.T) {
	t.Setenv("VAULT_WRAP_TTL", "1m")
	c, err := newClient(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/tonevault-transit/hmac/tonevault-lookup/sha2-256", "/v1/tonevault-kv/data/x", "/v1/sys/wrapping/wrap"} {
		if r := c.NewRequest(http.MethodPut, path); r.WrapTTL != "" {
			t.Errorf("PUT %s: wrap TTL %q, want none", path, r.WrapTTL)
		}
	}
}

// TestExpMACInputOnHeap proves that the expiry MAC's input, card number
// in clear, is a heap allocation, never on the stack of the goroutine
// that calls Vault (a stack that grows during the call is copied, and the
// old one is freed with the card data in it). Here it does not escape and
// is small, so the compiler would put it on the stack were it not from
// secret.Alloc.
func TestExpMACInputOnHeap(t *testing.T) {
	pan, exp := []byte("4111111111111111"), []byte("1230")
	b := expMACInput(pan, exp)
	if string(b) != "exp:4111111111111111:1230" {
		t.Fatalf("expMACInput: %d bytes, not exp:<pan>:<expiry>", len(b))
	}
	secret.Wipe(b)
	// Called directly, not through a func value, so that the compiler
	// may inline it here and keep what does not escape on the stack.
	if allocs := testing.AllocsPerRun(100, func() { secret.Wipe(expMACInput(pan, exp)) }); allocs < 1 {
		t.Errorf("expMACInput: %v heap allocations: the card data is built on the stack", allocs)
	}
}

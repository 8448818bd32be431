package tokenize

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/test/vaultserver"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// env is a real Vault with the gateway's objects set up, and a gateway
// logged in with a token that has only the gateway's policy: every
// functional test also proves that the policy is enough.
type env struct {
	srv  *vaultserver.Server
	cfg  Config
	v    *Vault
	logs *syncBuffer
	// errs collects the text of every error the test saw, for the leak
	// check.
	mu   sync.Mutex
	errs []string
}

type syncBuffer = testutil.SyncBuffer

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// newEnv starts a dev server (or a persistent one) and a gateway on it.
// mod adjusts the gateway config (formats, retries).
func newEnv(t testing.TB, opts vaultserver.Options, mod func(*Config)) *env {
	t.Helper()
	srv := vaultserver.StartWith(t, opts)
	e := &env{srv: srv, logs: &syncBuffer{}}
	e.cfg = DefaultConfig()
	e.cfg.Address = srv.Addr
	if mod != nil {
		mod(&e.cfg)
	}
	ctx := testCtx(t)
	if _, err := Setup(ctx, srv.Client, e.cfg); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	e.cfg.Auth.TokenFile = e.policyTokenFile(t, 0)
	e.v = e.gateway(t, e.cfg)
	return e
}

// policyTokenFile creates a token with only the gateway policy (no default
// policy) and writes it to a 0600 file.
func (e *env) policyTokenFile(t testing.TB, ttl time.Duration) string {
	t.Helper()
	req := &api.TokenCreateRequest{Policies: []string{PolicyName}, NoDefaultPolicy: true}
	if ttl > 0 {
		req.TTL = ttl.String()
	}
	s, err := e.srv.Client.Auth().Token().Create(req)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(path, []byte(s.Auth.ClientToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *env) gateway(t testing.TB, cfg Config) *Vault {
	t.Helper()
	return e.gatewayWith(t, cfg, Options{})
}

// gatewayWith is gateway with options; the logger is always the env's.
func (e *env) gatewayWith(t testing.TB, cfg Config, opts Options) *Vault {
	t.Helper()
	opts.Logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(e.logs), zapcore.DebugLevel))
	v, err := New(testCtx(t), cfg, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = v.Close() })
	return v
}

// noteErr records err's text for the leak check and returns err.
func (e *env) noteErr(err error) error {
	if err != nil {
		e.mu.Lock()
		e.errs = append(e.errs, err.Error())
		e.mu.Unlock()
	}
	return err
}

// checkNoLeak fails if any card data appears in the gateway's logs, in
// Vault's server log or in any error the test saw. Register it with
// t.Cleanup after the data is known.
func (e *env) checkNoLeak(t testing.TB, data ...string) {
	t.Helper()
	e.mu.Lock()
	errs := strings.Join(e.errs, "\n")
	e.mu.Unlock()
	outputs := map[string]string{"gateway log": e.logs.String(), "vault log": e.srv.Log(), "errors": errs}
	for name, out := range outputs {
		for _, d := range data {
			// The data as digits (a whole word: a short security code
			// must not match inside a timestamp) and as the base64 it
			// travels to Vault in.
			re := regexp.MustCompile(`\b` + regexp.QuoteMeta(d) + `\b|` + regexp.QuoteMeta(base64.StdEncoding.EncodeToString([]byte(d))))
			if d != "" && re.MatchString(out) {
				t.Errorf("%s holds card data", name)
			}
		}
	}
}

func sec(s string) secret.Secret { return secret.New([]byte(s)) }

// stored decrypts a token's record as root, which the gateway cannot:
// what the tests check tokenization against.
func (e *env) stored(t testing.TB, tok string) (pan, exp string) {
	t.Helper()
	root := e.srv.Client
	s, err := root.Logical().Read(e.cfg.KV.Mount + "/data/" + e.cfg.KV.Prefix + "/tokens/" + tok)
	if err != nil || s == nil {
		t.Fatalf("read the record of %q: %v", tok, err)
	}
	d, _ := s.Data["data"].(map[string]any)
	plain := func(field string) string {
		ct, _ := d[field].(string)
		r, err := root.Logical().Write(e.cfg.Transit.Mount+"/decrypt/"+e.cfg.Transit.CardKey, map[string]any{"ciphertext": ct})
		if err != nil {
			t.Fatalf("decrypt %s as root: %v", field, err)
		}
		b64, _ := r.Data["plaintext"].(string)
		b, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatalf("decrypt %s: %v", field, err)
		}
		return string(b)
	}
	return plain("pan"), plain("exp")
}

// writeOldLayout stores a card as gateways did before token paths came
// from lookup keys, and returns its token: a token with a random middle,
// its record at tokens/<token>, and the index entry
// index/<format>/<lookup key> → token, both written with cas 0 as the
// gateway of the time wrote them (here as root: the gateway's policy no
// longer lets it write the index). The lookup key, the expiry's MAC and
// the ciphertexts are the gateway's own.
func (e *env) writeOldLayout(t testing.TB, pan, exp, brand string, f Format) string {
	t.Helper()
	ctx := testCtx(t)
	lookup, expMAC, err := e.v.macs(ctx, sec(pan), sec(exp))
	if err != nil {
		t.Fatal(err)
	}
	ct, err := e.v.encrypt(ctx, []byte(pan), []byte(exp))
	if err != nil {
		t.Fatal(err)
	}
	var r [32]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	// A candidate of a random lookup key: a random middle, as tokens had.
	tok, err := f.candidate([]byte(pan), hex.EncodeToString(r[:]), 0)
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < maxCreateTries; n++ {
		if c, _ := f.candidate([]byte(pan), lookup, n); c == tok {
			t.Fatalf("the random token %q is one of the card's candidates", tok)
		}
	}
	rec := record{pan: ct[0], exp: ct[1], expMAC: expMAC, brand: brand, last4: pan[len(pan)-4:],
		format: f.id(), lookup: lookup, created: time.Now().UTC()}
	kv := e.cfg.KV.Mount + "/data/" + e.cfg.KV.Prefix
	root := e.srv.Client.Logical()
	if _, err := root.Write(kv+"/tokens/"+tok, casData(rec.data(), 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Write(kv+"/index/"+f.id()+"/"+lookup, casData(map[string]any{"token": tok}, 0)); err != nil {
		t.Fatal(err)
	}
	return tok
}

// dropLayoutMarker removes the marker Setup writes on a new store, as on
// a store that gateways used before it existed.
func (e *env) dropLayoutMarker(t testing.TB) {
	t.Helper()
	if _, err := e.srv.Client.Logical().Delete(e.cfg.KV.Mount + "/metadata/" + e.cfg.KV.Prefix + "/" + layoutKey); err != nil {
		t.Fatal(err)
	}
}

package tokenize

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/tonevault/tonevault/test/vaultserver"
)

func TestTokenizeRoundTrip(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	t.Cleanup(func() { e.checkNoLeak(t, testPANs...) })
	ctx := testCtx(t)
	tokens := map[string]string{}
	for _, p := range testPANs {
		tok, err := e.v.Tokenize(ctx, sec(p), sec("1230"), "testbrand", "m1")
		if err != nil {
			t.Fatalf("Tokenize: %v", e.noteErr(err))
		}
		if len(tok.Value) != len(p) || tok.Value[:6] != p[:6] || tok.Last4 != p[len(p)-4:] ||
			tok.Value[len(p)-4:] != tok.Last4 || luhnValid([]byte(tok.Value)) || tok.Value == p {
			t.Fatalf("token %q for a %d-digit card: want same length, first 6 and last 4 kept, Luhn failing", tok.Value, len(p))
		}
		if tok.Brand != "testbrand" || tok.Created.IsZero() {
			t.Fatalf("token %+v", tok)
		}
		if other, dup := tokens[tok.Value]; dup {
			t.Fatalf("two cards got token %q (%s)", tok.Value, other[:6])
		}
		tokens[tok.Value] = p
	}
	for tok, p := range tokens {
		// Same card, same token.
		again, err := e.v.Tokenize(ctx, sec(p), sec("1230"), "testbrand", "m1")
		if err != nil {
			t.Fatal(e.noteErr(err))
		}
		if again.Value != tok {
			t.Fatalf("same card tokenized twice: %q then %q", tok, again.Value)
		}
		if pan, exp := e.stored(t, tok); pan != p || exp != "1230" {
			t.Fatalf("the record of %q holds another card", tok)
		}
	}
}

func TestTokenizeUpdatesExpiry(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	t.Cleanup(func() { e.checkNoLeak(t, "5555555555554444") })
	ctx := testCtx(t)
	a, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0127"), "mastercard", "m1")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	b, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("0931"), "mc", "m1")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	if a.Value != b.Value || b.Brand != "mc" {
		t.Fatalf("tokens %+v then %+v: want the same token with the new brand", a, b)
	}
	if _, exp := e.stored(t, a.Value); exp != "0931" {
		t.Fatal("expiry not updated")
	}
}

func TestTokenizeMerchantFormats(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, func(c *Config) {
		c.MerchantFormats = map[string]Format{
			"opaque-shop": {Kind: KindOpaque},
			"last4-shop":  {Kind: KindDigits, KeepLast: 4, Length: 19},
		}
	})
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111") })
	ctx := testCtx(t)
	pan := "4111111111111111"
	got := map[string]string{}
	for _, m := range []string{"default-shop", "opaque-shop", "last4-shop"} {
		tok, err := e.v.Tokenize(ctx, sec(pan), sec("1230"), "visa", m)
		if err != nil {
			t.Fatal(e.noteErr(err))
		}
		got[m] = tok.Value
		if back, _ := e.stored(t, tok.Value); back != pan {
			t.Fatalf("%s: the record holds another card", m)
		}
	}
	if o := got["opaque-shop"]; !strings.HasPrefix(o, OpaquePrefix) || len(o) != opaqueLen {
		t.Errorf("opaque-shop token %q", o)
	}
	if d := got["last4-shop"]; len(d) != 19 || !strings.HasSuffix(d, "1111") || strings.HasPrefix(d, "411111") && d[6:15] == "111111111" || luhnValid([]byte(d)) {
		t.Errorf("last4-shop token %q: want 19 digits ending 1111, Luhn failing", d)
	}
	if got["default-shop"] == got["last4-shop"] || got["default-shop"] == got["opaque-shop"] {
		t.Errorf("formats share tokens: %v", got)
	}
}

func TestInvalidInput(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	ctx := testCtx(t)
	if _, err := e.v.Tokenize(ctx, sec("4111111111111112"), sec("1230"), "visa", "m"); !errors.Is(err, ErrInvalidInput) {
		t.Errorf("bad Luhn: %v", err)
	}
	for _, tok := range []string{"4111111111111111", "../../sys/policy", "", "tok_x"} {
		if err := e.v.Rewrap(ctx, tok); !errors.Is(err, ErrInvalidInput) {
			t.Errorf("Rewrap(%q): %v, want ErrInvalidInput", tok, err)
		}
	}
	if err := e.v.Rewrap(ctx, "4111110000001112"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown token: %v, want ErrNotFound", err)
	}
	closed := e.gateway(t, e.cfg)
	if err := closed.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := closed.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m"); !errors.Is(err, ErrClosed) {
		t.Errorf("Tokenize after Close: %v, want ErrClosed", err)
	}
	if err := closed.Health(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Health after Close: %v, want ErrClosed", err)
	}
}

// TestKeyRotationRewrap: after a rotation old tokens still decrypt (as
// root: the gateway cannot), new data uses the new version, and Rewrap
// moves old tokens to it, so the old version can be retired.
func TestKeyRotationRewrap(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111", "378282246310005") })
	ctx := testCtx(t)
	root := e.srv.Client
	old, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	if v := e.storedVersion(t, old.Value); v != "vault:v1:" {
		t.Fatalf("stored ciphertext version %q, want vault:v1:", v)
	}
	if _, err := root.Logical().Write(e.cfg.Transit.Mount+"/keys/"+e.cfg.Transit.CardKey+"/rotate", nil); err != nil {
		t.Fatal(err)
	}
	// The gateway itself may not rotate.
	if _, err := e.v.client.Logical().Write(e.cfg.Transit.Mount+"/keys/"+e.cfg.Transit.CardKey+"/rotate", nil); !isStatus(err, 403) {
		t.Fatalf("gateway rotate: %v, want 403", err)
	}
	if pan, _ := e.stored(t, old.Value); pan != "4111111111111111" {
		t.Fatal("old token after rotation: another card")
	}
	fresh, err := e.v.Tokenize(ctx, sec("378282246310005"), sec("1230"), "amex", "m")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	if v := e.storedVersion(t, fresh.Value); v != "vault:v2:" {
		t.Fatalf("new token stored with %q, want vault:v2:", v)
	}
	if err := e.v.Rewrap(ctx, old.Value); err != nil {
		t.Fatal(e.noteErr(err))
	}
	if v := e.storedVersion(t, old.Value); v != "vault:v2:" {
		t.Fatalf("after Rewrap: %q, want vault:v2:", v)
	}
	// Retire version 1: rewrapped data must still decrypt.
	if _, err := root.Logical().Write(e.cfg.Transit.Mount+"/keys/"+e.cfg.Transit.CardKey+"/config",
		map[string]any{"min_decryption_version": 2}); err != nil {
		t.Fatal(err)
	}
	if pan, exp := e.stored(t, old.Value); pan != "4111111111111111" || exp != "1230" {
		t.Fatal("rewrapped token after retiring v1: another card")
	}
	// Same card still maps to the same token (the lookup key is pinned).
	again, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil || again.Value != old.Value {
		t.Fatalf("same card after rotation: %q, %v; want %q", again.Value, e.noteErr(err), old.Value)
	}
}

// storedVersion reads the token record as root and returns the
// "vault:vN:" prefix of both ciphertexts (which must agree).
func (e *env) storedVersion(t *testing.T, tok string) string {
	t.Helper()
	s, err := e.srv.Client.Logical().Read(e.cfg.KV.Mount + "/data/" + e.cfg.KV.Prefix + "/tokens/" + tok)
	if err != nil || s == nil {
		t.Fatalf("read record: %v", err)
	}
	d := s.Data["data"].(map[string]any)
	pan, exp := d["pan"].(string), d["exp"].(string)
	p := pan[:strings.LastIndexByte(pan, ':')+1]
	if !strings.HasPrefix(exp, p) {
		t.Fatalf("pan and expiry stored with different key versions")
	}
	return p
}

func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// TestTokenizeConcurrentSameCard: tokenizations of one new card racing
// each other all get the same token (KV check-and-set on the index).
func TestTokenizeConcurrentSameCard(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	ctx := testCtx(t)
	const n = 8
	got := make(chan string, n)
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			tok, err := e.v.Tokenize(ctx, sec("3530111333300000"), sec("1230"), "jcb", "m")
			got <- tok.Value
			errs <- e.noteErr(err)
		}()
	}
	first := ""
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		v := <-got
		if first == "" {
			first = v
		}
		if v != first {
			t.Fatalf("concurrent tokenizations of one card: %q and %q", first, v)
		}
	}
	// Losers cleaned up their records: only the winner is stored.
	s, err := e.srv.Client.Logical().List(e.cfg.KV.Mount + "/metadata/" + e.cfg.KV.Prefix + "/tokens")
	if err != nil || s == nil {
		t.Fatalf("list tokens: %v", err)
	}
	if keys, _ := s.Data["keys"].([]any); len(keys) != 1 {
		t.Fatalf("%d token records stored, want 1: %v", len(keys), keys)
	}
	t.Cleanup(func() { e.checkNoLeak(t, "3530111333300000") })
}

// TestExpiryMAC: the gateway tells a new expiry from the stored one by MAC:
// the same expiry writes nothing, a record from before the MAC existed gets
// one, and two cards with one expiry have different MACs, neither of them
// a lookup key.
func TestExpiryMAC(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111", "5555555555554444") })
	ctx := testCtx(t)
	path := e.cfg.KV.Mount + "/data/" + e.cfg.KV.Prefix + "/tokens/"
	record := func(tok string) (map[string]any, int64) {
		s, err := e.srv.Client.Logical().Read(path + tok)
		if err != nil || s == nil {
			t.Fatalf("read record: %v", err)
		}
		md, _ := s.Data["metadata"].(map[string]any)
		n, _ := md["version"].(json.Number).Int64()
		d, _ := s.Data["data"].(map[string]any)
		return d, n
	}
	a, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	if _, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m"); err != nil {
		t.Fatal(e.noteErr(err))
	}
	d, version := record(a.Value)
	if version != 1 {
		t.Errorf("the same card and expiry wrote the record again (version %d)", version)
	}
	mac, _ := d["exp_mac"].(string)
	b, err := e.v.Tokenize(ctx, sec("5555555555554444"), sec("1230"), "mastercard", "m")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	db, _ := record(b.Value)
	if mac == "" || mac == db["exp_mac"] || mac == d["lookup"] || mac == db["lookup"] {
		t.Errorf("expiry MACs: %q and %v, lookups %v and %v: want two different MACs, no lookup key", mac, db["exp_mac"], d["lookup"], db["lookup"])
	}

	// A record written before expiry MACs: the next tokenization stores
	// the expiry again, with its MAC.
	delete(d, "exp_mac")
	if _, err := e.srv.Client.Logical().Write(path+a.Value, map[string]any{"data": d}); err != nil {
		t.Fatal(err)
	}
	again, err := e.v.Tokenize(ctx, sec("4111111111111111"), sec("1230"), "visa", "m")
	if err != nil || again.Value != a.Value {
		t.Fatalf("legacy record: %q, %v; want %q", again.Value, e.noteErr(err), a.Value)
	}
	if d, _ := record(a.Value); d["exp_mac"] != mac {
		t.Errorf("legacy record's MAC after tokenization: %v, want %q", d["exp_mac"], mac)
	}
	if _, exp := e.stored(t, a.Value); exp != "1230" {
		t.Error("legacy record's expiry changed")
	}
}

// callLog records the Vault calls a gateway makes (Options.Observe).
type callLog struct {
	mu    sync.Mutex
	calls []string
}

func (l *callLog) observe(op string, _ time.Duration, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		op += " (" + err.Error() + ")"
	}
	l.calls = append(l.calls, op)
}

// take returns the calls since the last take.
func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.calls
	l.calls = nil
	return c
}

// TestTokenizeVaultCalls: the Vault round trips of each kind of
// tokenization, in order: each costs Vault a request, and Vault's CPU
// bounds the payments per second (BENCHMARKS.md, Payments). A new card
// costs one write; a known one, the HMACs and its record.
func TestTokenizeVaultCalls(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	t.Cleanup(func() { e.checkNoLeak(t, "4111111111111111", "5555555555554444", "378282246310005") })
	ctx := testCtx(t)
	const (
		miss = " (tokenize: token not found: kv read token)"
		noIx = " (tokenize: token not found: kv read index)"
	)
	type call struct {
		name, pan, exp, brand string
		want                  []string
	}
	run := func(t *testing.T, v *Vault, log *callLog, calls []call) {
		for _, c := range calls {
			if _, err := v.Tokenize(ctx, sec(c.pan), sec(c.exp), c.brand, "m"); err != nil {
				t.Fatalf("%s: %v", c.name, e.noteErr(err))
			}
			if got := log.take(); !slices.Equal(got, c.want) {
				t.Errorf("%s: Vault calls\n  %q\nwant\n  %q", c.name, got, c.want)
			}
		}
	}
	t.Run("new store", func(t *testing.T) {
		var log callLog
		v := e.gatewayWith(t, e.cfg, Options{Observe: log.observe})
		log.take() // the login
		run(t, v, &log, []call{
			// The layout marker is read once.
			{"new card", "4111111111111111", "1230", "visa",
				[]string{"transit hmac", "kv read token" + miss, "kv read layout", "transit encrypt", "kv write token"}},
			{"known card", "4111111111111111", "1230", "visa",
				[]string{"transit hmac", "kv read token"}},
			{"known card, new expiry", "4111111111111111", "0131", "visa",
				[]string{"transit hmac", "kv read token", "transit encrypt", "kv write token"}},
			{"known card, new brand", "4111111111111111", "0131", "VISA",
				[]string{"transit hmac", "kv read token", "kv write token"}},
			{"another new card", "5555555555554444", "1230", "mastercard",
				[]string{"transit hmac", "kv read token" + miss, "transit encrypt", "kv write token"}},
		})
	})
	t.Run("store with an index", func(t *testing.T) {
		old := e.writeOldLayout(t, "378282246310005", "1230", "amex", e.cfg.TokenFormat)
		e.dropLayoutMarker(t)
		var log callLog
		v := e.gatewayWith(t, e.cfg, Options{Observe: log.observe})
		log.take()
		run(t, v, &log, []call{
			{"card with an old token", "378282246310005", "1230", "amex",
				[]string{"transit hmac", "kv read token" + miss, "kv read layout (tokenize: token not found: kv read layout)", "kv read index", "kv read token"}},
			{"card with an old token, again", "378282246310005", "1230", "amex",
				[]string{"transit hmac", "kv read token" + miss, "kv read index", "kv read token"}},
			{"new card", "6011111111111117", "1230", "discover",
				[]string{"transit hmac", "kv read token" + miss, "kv read index" + noIx, "transit encrypt", "kv write token"}},
			{"known card", "4111111111111111", "0131", "VISA",
				[]string{"transit hmac", "kv read token"}},
		})
		if tok, err := v.Tokenize(ctx, sec("378282246310005"), sec("1230"), "amex", "m"); err != nil || tok.Value != old {
			t.Errorf("card with an old token: %q, %v; want %q", tok.Value, e.noteErr(err), old)
		}
	})
}

// TestOldLayoutTokensKeepWorking: tokens stored before token paths came
// from lookup keys (a random token, its record and an index entry) keep
// working on a store that holds them: the same card gets its old token, a
// new expiry updates the old record, Rewrap moves it to a new key
// version, and Setup leaves such a store without the marker that would
// skip the index.
func TestOldLayoutTokensKeepWorking(t *testing.T) {
	e := newEnv(t, vaultserver.Options{}, nil)
	cards := []string{"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117"}
	t.Cleanup(func() { e.checkNoLeak(t, cards...) })
	ctx := testCtx(t)
	f := e.cfg.TokenFormat
	oldA := e.writeOldLayout(t, cards[0], "1230", "visa", f)
	oldB := e.writeOldLayout(t, cards[1], "1230", "mastercard", f)
	oldGone := e.writeOldLayout(t, cards[2], "1230", "amex", f)
	kv := e.cfg.KV.Mount + "/metadata/" + e.cfg.KV.Prefix
	if _, err := e.srv.Client.Logical().Delete(kv + "/tokens/" + oldGone); err != nil {
		t.Fatal(err)
	}
	// The store as an upgrade finds it: an index, no marker; Setup runs
	// again and must not declare the index absent.
	e.dropLayoutMarker(t)
	if _, err := Setup(ctx, e.srv.Client, e.cfg); err != nil {
		t.Fatal(err)
	}
	if s, err := e.srv.Client.Logical().Read(e.cfg.KV.Mount + "/data/" + e.cfg.KV.Prefix + "/" + layoutKey); err != nil || s != nil {
		t.Fatalf("Setup on a store with an index wrote the layout marker: %v %v", s, err)
	}
	v := e.gateway(t, e.cfg)
	tokens := func() int {
		s, err := e.srv.Client.Logical().List(kv + "/tokens")
		if err != nil || s == nil {
			t.Fatalf("list tokens: %v", err)
		}
		keys, _ := s.Data["keys"].([]any)
		return len(keys)
	}
	before := tokens()

	a, err := v.Tokenize(ctx, sec(cards[0]), sec("1230"), "visa", "m")
	if err != nil || a.Value != oldA || a.Brand != "visa" || a.Last4 != "1111" {
		t.Fatalf("old token, same expiry: %+v, %v; want %q", a, e.noteErr(err), oldA)
	}
	b, err := v.Tokenize(ctx, sec(cards[1]), sec("0931"), "mc", "m")
	if err != nil || b.Value != oldB || b.Brand != "mc" {
		t.Fatalf("old token, new expiry: %+v, %v; want %q", b, e.noteErr(err), oldB)
	}
	if pan, exp := e.stored(t, oldB); pan != cards[1] || exp != "0931" {
		t.Fatal("the old record of a card with a new expiry: not updated in place")
	}
	if n := tokens(); n != before {
		t.Fatalf("%d token records after tokenizing cards with old tokens, want %d", n, before)
	}

	// An index entry whose record is gone: the card gets a new token.
	c, err := v.Tokenize(ctx, sec(cards[2]), sec("1230"), "amex", "m")
	if err != nil || c.Value == oldGone {
		t.Fatalf("card whose old record is gone: %q, %v", c.Value, e.noteErr(err))
	}
	// A new card, and the same again: one token, no index entry.
	d, err := v.Tokenize(ctx, sec(cards[3]), sec("1230"), "discover", "m")
	if err != nil {
		t.Fatal(e.noteErr(err))
	}
	if d2, err := v.Tokenize(ctx, sec(cards[3]), sec("1230"), "discover", "m"); err != nil || d2.Value != d.Value {
		t.Fatalf("new card twice: %q then %q, %v", d.Value, d2.Value, e.noteErr(err))
	}
	if pan, _ := e.stored(t, d.Value); pan != cards[3] {
		t.Fatal("new card's record holds another card")
	}
	if n := tokens(); n != before+2 {
		t.Fatalf("%d token records, want %d (and the two new tokens')", n, before+2)
	}

	// Rotation: the old token's record moves to the new key version.
	if _, err := e.srv.Client.Logical().Write(e.cfg.Transit.Mount+"/keys/"+e.cfg.Transit.CardKey+"/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if err := v.Rewrap(ctx, oldA); err != nil {
		t.Fatal(e.noteErr(err))
	}
	if ver := e.storedVersion(t, oldA); ver != "vault:v2:" {
		t.Fatalf("old token after Rewrap: %q, want vault:v2:", ver)
	}
	if again, err := v.Tokenize(ctx, sec(cards[0]), sec("1230"), "visa", "m"); err != nil || again.Value != oldA {
		t.Fatalf("old token after Rewrap: %q, %v; want %q", again.Value, e.noteErr(err), oldA)
	}
}

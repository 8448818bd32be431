package psp_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/psp/sim"
	"github.com/tonevault/tonevault/store"
)

// testStore is the gateway's store as the connector gets it, on SQLite in
// a temporary directory: embedded, nothing to set up.
func testStore(t testing.TB) *store.Store { return openStoreIn(t, t.TempDir()) }

func openStoreIn(t testing.TB, dir string) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(dir, "tonevault.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Card data the tests send. Every test greps what it produced for all of it.
var (
	testPANs = []string{
		"4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
		"4000000000000002", "4000000000000069", "4000000000000119", "4000000000000127", "4111111111111112",
	}
	testCVV   = "737"
	cvvRegexp = regexp.MustCompile(`(^|[^0-9])(737|7373)([^0-9]|$)`)
	// timestamps are stripped before looking for the CVV: ".737Z" is a time
	timestamps = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)`)
)

type syncBuffer = testutil.SyncBuffer

// rawLogger logs JSON without ToneVault's masking encoder, so a leak shows.
func rawLogger(w *syncBuffer) *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(w), zap.DebugLevel))
}

type env struct {
	t      *testing.T
	sim    *sim.Server
	simLog *syncBuffer
	log    *syncBuffer
	dir    string
	st     *store.Store // SQLite in dir
	cfg    psp.Config
	conn   *psp.ISO
	texts  []string // errors and other output to grep at the end
}

// newEnv starts a simulator and a connector to it; cleanup checks that no
// card data reached the logs, errors or state directory.
func newEnv(t *testing.T, sc sim.Config, mod func(*psp.Config)) *env {
	t.Helper()
	e := &env{t: t, simLog: &syncBuffer{}, log: &syncBuffer{}, dir: t.TempDir()}
	sc.Log = e.simLog
	s, err := sim.Listen("127.0.0.1:0", sc)
	if err != nil {
		t.Fatal(err)
	}
	e.sim = s
	e.st = openStoreIn(t, e.dir)
	e.cfg = psp.Config{
		Addrs:              []string{s.Addr()},
		Header:             sc.Header,
		Timeout:            5 * time.Second,
		ConnectTimeout:     2 * time.Second,
		ReconnectWait:      50 * time.Millisecond,
		MaxReconnectWait:   200 * time.Millisecond,
		ReversalBackoff:    50 * time.Millisecond,
		MaxReversalBackoff: 200 * time.Millisecond,
		Terminal:           "TERM0001",
		Merchant:           "MERCHANT0000001",
		Logger:             rawLogger(e.log),
	}
	if mod != nil {
		mod(&e.cfg)
	}
	e.start()
	t.Cleanup(func() {
		e.conn.Close()
		s.Close()
		e.checkNoCardData()
		if t.Failed() || os.Getenv("PSP_TEST_LOGS") != "" {
			t.Logf("connector log:\n%s\nsim log:\n%s", e.log.String(), e.simLog.String())
		}
	})
	return e
}

func (e *env) start() {
	e.t.Helper()
	c, err := psp.NewISO(e.cfg, e.st)
	if err != nil {
		e.t.Fatal(err)
	}
	e.conn = c
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.WaitReady(ctx); err != nil {
		e.t.Fatalf("connector never signed on: %v", err)
	}
}

func request(pan string, amount int64) *psp.Request {
	cvv := testCVV
	if len(pan) == 15 {
		cvv = "7373"
	}
	return &psp.Request{
		Kind: psp.Authorization, PAN: secret.New([]byte(pan)), Expiry: secret.New([]byte("1230")),
		CVV: secret.New([]byte(cvv)), Brand: brandOf(pan), Amount: amount, Currency: "EUR",
		Token: "tok_test", MerchantRef: "order-1",
	}
}

// brandOf is the brand capture would find for a test card.
func brandOf(pan string) string {
	switch {
	case strings.HasPrefix(pan, "4"):
		return "visa"
	case strings.HasPrefix(pan, "5"), strings.HasPrefix(pan, "2"):
		return "mastercard"
	case strings.HasPrefix(pan, "34"), strings.HasPrefix(pan, "37"):
		return "amex"
	case strings.HasPrefix(pan, "6"):
		return "discover"
	}
	return "unknown"
}

func (e *env) authorize(r *psp.Request) (psp.Response, error) {
	e.t.Helper()
	resp, err := e.conn.Authorize(context.Background(), r)
	if err != nil {
		e.texts = append(e.texts, err.Error())
	}
	r.PAN.Wipe()
	r.Expiry.Wipe()
	r.CVV.Wipe()
	return resp, err
}

// eventually polls cond for up to 15 s: long enough for a loaded machine,
// and the test still fails when the thing never happens.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *env) reversed(stan string) bool {
	for _, s := range e.sim.Stats().ReversedSTANs {
		if s == stan {
			return true
		}
	}
	return false
}

func (e *env) checkNoCardData() {
	e.t.Helper()
	outputs := map[string]string{
		"connector log": e.log.String(),
		"sim log":       e.simLog.String(),
		"errors":        strings.Join(e.texts, "\n"),
	}
	filepath.Walk(e.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			outputs["state file "+p] = string(b)
		}
		return nil
	})
	checkNoCardData(e.t, outputs)
}

func checkNoCardData(t *testing.T, outputs map[string]string) {
	t.Helper()
	for _, leak := range cardDataLeaks(outputs) {
		t.Error(leak)
	}
}

// cardDataLeaks lists every test PAN or CVV found in outputs.
func cardDataLeaks(outputs map[string]string) []string {
	var leaks []string
	for name, out := range outputs {
		for _, pan := range testPANs {
			if strings.Contains(out, pan) {
				leaks = append(leaks, name+" contains PAN "+pan)
			}
		}
		out = timestamps.ReplaceAllString(out, "<ts>")
		if loc := cvvRegexp.FindStringIndex(out); loc != nil {
			leaks = append(leaks, name+" contains the CVV: ..."+out[max(0, loc[0]-40):min(len(out), loc[1]+40)]+"...")
		}
	}
	return leaks
}

func TestLeakCheckerCatchesLeaks(t *testing.T) {
	for out, want := range map[string]int{
		`{"cvv":"737","pan":"4111111111111111"}`:           2,
		`2026-11-23T23:48:59.737Z stan=000737 amount=1737`: 0,
		`cvv 7373`:                     1,
		`card 378282246310005 at .737`: 2,
	} {
		if got := len(cardDataLeaks(map[string]string{"x": out})); got != want {
			t.Errorf("%s: %d leaks found, want %d", out, got, want)
		}
	}
}

package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/audit"
)

// TestNoCardDataInOutput runs payments of every kind with a real audit
// trail and a JSON logger, keeps every view (after every key and every
// subscription update), and greps all of it for the typed card data.
func TestNoCardDataInOutput(t *testing.T) {
	type card struct{ pan, exp, cvv string }
	cards := []card{
		{visa, expiry, cvv},
		{"378282246310005", "0931", "8264"},
		{"5555555555554444", "1129", "592"},
		{"6011111111111117", "0830", "918"},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	hm, err := audit.NewHMAC(audit.HMACKey{ID: "k1", Key: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.Open(context.Background(), path, audit.Options{Signer: hm, Anchor: &audit.FileAnchor{Path: path + ".anchor"}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := audit.NewQueue(w, audit.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var logBuf bytes.Buffer
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logConfig()), zapcore.AddSync(&logBuf), zap.DebugLevel))
	clk := &fakeClock{t: t0}
	proc := &fakeProc{}
	m, err := NewManager(Config{}, Options{Processor: proc, Audit: q, Now: clk.now, Logger: log, TickInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var views []string
	var ids []string
	keep := func(v View) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		views = append(views, string(b))
	}
	type step func(s *Session, c card)
	press := func(keys string) step {
		return func(s *Session, _ card) {
			for i := 0; i < len(keys); i++ {
				m.Digit(s.CallID(), dtmfDigit(keys[i]), clk.advance(100*time.Millisecond))
				keep(s.View())
			}
		}
	}
	typeCard := func(s *Session, c card) { press(c.pan+"#"+c.exp+c.cvv)(s, c) }
	submit := func(s *Session, _ card) {
		v, err := s.Submit(context.Background(), "agent:alice")
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
		keep(v)
	}
	scenarios := [][]step{
		{typeCard, submit},
		{typeCard, func(*Session, card) { proc.res = Result{Outcome: OutcomeDeclined, ResponseCode: "05"} }, submit},
		{typeCard, func(*Session, card) { proc.res = Result{}; proc.authErrs = []error{ErrUnavailable} }, submit, submit},
		{typeCard, func(s *Session, _ card) { m.CallEnded(s.CallID()) }},
		{func(s *Session, c card) {
			press(c.pan[:8]+"*"+c.pan+"#"+c.exp)(s, c)
			_ = s.Reset(FieldCardNumber, "a")
		}, typeCard, submit},
		{func(s *Session, c card) { press(c.pan[:len(c.pan)-1]+"0#")(s, c) }, func(s *Session, _ card) { m.Tick(clk.advance(time.Hour)) }},
		{func(s *Session, c card) {
			press(c.pan+"#"+c.exp+c.cvv[:2])(s, c)
			m.Tick(clk.advance(time.Minute))
			_ = s.Restart("a")
		}, typeCard, submit},
	}
	for i, sc := range scenarios {
		for j, c := range cards {
			call := strings.Repeat("x", i+1) + strings.Repeat("y", j+1)
			s, err := m.Start(call, testReq, "agent:alice")
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, s.ID())
			ch, cancel := s.Subscribe()
			for _, st := range sc {
				st(s, c)
				select {
				case v := <-ch:
					keep(v)
				default:
				}
			}
			cancel()
			keep(s.View())
			_ = s.Cancel("a")
			assertWiped(t, s)
		}
	}
	m.Close()
	if err := q.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := m.AuditErrors(); n != 0 {
		t.Fatalf("%d audit records refused (the log says which)", n)
	}
	trail, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Hash chain and signatures are hex and could hold any short digit
	// string by chance: grep the record fields that carry content.
	var records []string
	for rec, err := range audit.Records(bytes.NewReader(trail)) {
		if err != nil {
			t.Fatal(err)
		}
		records = append(records, strings.Join([]string{rec.Actor, rec.Origin, rec.CallID, string(rec.Reason), rec.MaskedPAN, string(rec.Event),
			rec.Field, rec.State, rec.ResponseCode, rec.STAN}, "|"))
	}
	if len(records) < 100 {
		t.Fatalf("only %d audit records", len(records))
	}
	all := strings.Join(views, "\n") + "\n" + strings.Join(records, "\n") + "\n" + logBuf.String()
	for _, id := range ids { // random base32
		all = strings.ReplaceAll(all, id, "pay_")
	}
	for _, c := range cards {
		for what, s := range map[string]string{"PAN": c.pan, "PAN past the BIN": c.pan[6:], "expiry": c.exp, "CVV": c.cvv} {
			if strings.Contains(all, s) {
				i := strings.Index(all, s)
				t.Errorf("%s found in output: ...%q...", what, all[max(0, i-200):min(len(all), i+80)])
			}
		}
	}
	if !strings.Contains(all, "411111******1111") || !strings.Contains(all, "411111••••••1111") {
		t.Error("masked PAN missing: is the grep looking at the right output?")
	}
}

// logConfig is the production encoding without the time, whose digits
// could hold a short code by chance.
func logConfig() zapcore.EncoderConfig {
	c := zap.NewProductionEncoderConfig()
	c.TimeKey = zapcore.OmitKey
	return c
}

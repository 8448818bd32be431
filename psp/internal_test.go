package psp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/secret"
	"github.com/tonevault/tonevault/store"
)

const testPAN = "4111111111111111"

// message builds a message of the given MTI with the fields ToneVault
// sends for it.
func message(t testing.TB, mti string) *iso8583.Message {
	t.Helper()
	m := iso8583.NewMessage(Spec)
	m.MTI(mti)
	set := func(id int, v string) {
		if err := m.Field(id, v); err != nil {
			t.Fatalf("field %d: %v", id, err)
		}
	}
	common := func() {
		set(fProcCode, "000000")
		set(fAmount, "1234")
		set(fTransmission, "1123194601")
		set(fSTAN, "000042")
		set(fLocalTime, "194601")
		set(fLocalDate, "1123")
		set(fRRN, "532719000042")
		set(fTerminal, "TERM0001")
		set(fMerchant, "MERCHANT0000001")
		set(fCurrency, "978")
	}
	switch mti {
	case "0100", "0200":
		common()
		set(fMCC, "5969")
		set(fEntryMode, "012")
		set(fCondition, "08")
		set(fMOTO, "01")
		if err := m.BinaryField(fPAN, []byte(testPAN)); err != nil {
			t.Fatal(err)
		}
		if err := m.BinaryField(fExpiry, []byte("3012")); err != nil {
			t.Fatal(err)
		}
		if err := m.BinaryField(fCVV, []byte("737")); err != nil {
			t.Fatal(err)
		}
	case "0110", "0210":
		common()
		set(fAuthCode, "T00001")
		set(fRespCode, "00")
	case "0400", "0401":
		common()
		set(fOriginal, "0100"+"000041"+"1123194550"+"00000000000"+"00000000000")
	case "0410":
		common()
		set(fRespCode, "00")
		set(fOriginal, "0100"+"000041"+"1123194550"+"00000000000"+"00000000000")
	case "0800":
		set(fTransmission, "1123194601")
		set(fSTAN, "000043")
		set(fNetMgmt, "001")
	case "0810":
		set(fTransmission, "1123194601")
		set(fSTAN, "000043")
		set(fNetMgmt, "001")
		set(fRespCode, "00")
	default:
		t.Fatalf("no template for %s", mti)
	}
	return m
}

// fieldBytes returns every set field's bytes, card data included.
func fieldBytes(t *testing.T, m *iso8583.Message) map[int]string {
	out := map[int]string{}
	for id, f := range m.GetFields() {
		if id == 1 {
			continue
		}
		b, err := f.Bytes()
		if err != nil {
			t.Fatalf("field %d: %v", id, err)
		}
		out[id] = string(b)
	}
	return out
}

func TestPackUnpackRoundTrip(t *testing.T) {
	for _, mti := range []string{"0100", "0110", "0200", "0210", "0400", "0401", "0410", "0800", "0810"} {
		t.Run(mti, func(t *testing.T) {
			m := message(t, mti)
			want := fieldBytes(t, m)
			packed, err := Pack(m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Unpack(packed)
			if err != nil {
				t.Fatal(err)
			}
			have := fieldBytes(t, got)
			if fmt.Sprint(have) != fmt.Sprint(want) {
				t.Errorf("round trip:\n got %v\nwant %v", have, want)
			}
			// and the second pack is byte-identical
			again, err := Pack(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, packed) {
				t.Errorf("repacked differs:\n%q\n%q", again, packed)
			}
			for _, h := range []Header{Binary2, ASCII4} {
				var buf bytes.Buffer
				if err := h.WriteMessage(&buf, got); err != nil {
					t.Fatal(err)
				}
				framed, err := h.ReadMessage(&buf)
				if err != nil {
					t.Fatalf("%v: %v", h, err)
				}
				if fmt.Sprint(fieldBytes(t, framed)) != fmt.Sprint(want) {
					t.Errorf("%v framing changed the message", h)
				}
			}
		})
	}
}

func TestSensitiveFieldsNeverPrint(t *testing.T) {
	m := message(t, "0100")
	js, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var desc bytes.Buffer
	if err := iso8583.Describe(m, &desc, Filters()...); err != nil {
		t.Fatal(err)
	}
	var descNoFilter bytes.Buffer
	if err := iso8583.Describe(m, &descNoFilter, iso8583.DoNotFilterFields()...); err != nil {
		t.Fatal(err)
	}
	s2, _ := m.GetString(fPAN)
	outs := map[string]string{
		"json": string(js), "describe": desc.String(), "describe unfiltered": descNoFilter.String(),
		"GetString": s2, "%v": fmt.Sprintf("%v %+v", m.GetFields(), m.GetField(fPAN)),
	}
	for name, out := range outs {
		for _, bad := range []string{testPAN, "3012", "1230", "737"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s shows card data %q:\n%s", name, bad, out)
			}
		}
	}
	if !strings.Contains(desc.String(), "1234") {
		t.Errorf("describe lost the amount, so the test is not looking at the message:\n%s", desc.String())
	}
}

func TestWipeClearsCardData(t *testing.T) {
	m := message(t, "0100")
	f := m.GetField(fPAN).(*Sensitive)
	packed, err := f.Pack()
	if err != nil {
		t.Fatal(err)
	}
	Wipe(m)
	if !secret.Wrap(packed).Wiped() {
		t.Errorf("packed PAN not wiped: %q", packed)
	}
	if b, _ := f.Bytes(); len(b) != 0 {
		t.Errorf("PAN still %q", b)
	}
}

func TestUnpackErrorsCarryNoCardData(t *testing.T) {
	m := message(t, "0100")
	packed, err := Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	failures := 0
	// Cut, shift and corrupt the message at every position.
	for i := 0; i < len(packed); i++ {
		variants := [][]byte{
			packed[:i],
			append(append([]byte{}, packed[:i]...), packed[i+1:]...),
			append(append(append([]byte{}, packed[:i]...), 'X'), packed[i:]...),
		}
		c := append([]byte{}, packed...)
		c[i] ^= 0x80
		variants = append(variants, c)
		for _, v := range variants {
			_, err := Unpack(v)
			if err == nil {
				continue
			}
			failures++
			msg := fmt.Sprintf("%v %+v %#v", err, err, err)
			for _, bad := range []string{testPAN, "411111111", "737"} {
				if strings.Contains(msg, bad) {
					t.Fatalf("unpack error shows card data: %s", msg)
				}
			}
		}
	}
	if failures == 0 {
		t.Fatal("no variant failed to unpack: the test checked nothing")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		code    string
		outcome Outcome
		reason  string
	}{
		{"00", Approved, "approved"},
		{"05", Declined, "do_not_honour"},
		{"14", Declined, "invalid_card"},
		{"51", Declined, "insufficient_funds"},
		{"54", Declined, "expired_card"},
		{"57", Declined, "not_permitted_to_cardholder"},
		{"62", Declined, "restricted_card"},
		{"91", Error, "issuer_unavailable"},
		{"96", Error, "system_malfunction"},
		{"7Z", Declined, "declined_7Z"},
		{"\x00<", Declined, "declined___"},
	} {
		o, r := Classify(tc.code)
		if o != tc.outcome || r != tc.reason {
			t.Errorf("Classify(%q) = %v %q, want %v %q", tc.code, o, r, tc.outcome, tc.reason)
		}
	}
}

// openStore is an SQLite store in a temporary directory: the real
// thing, embedded, with nothing to set up.
func openStore(t testing.TB) *store.Store {
	t.Helper()
	cfg := store.DefaultConfig()
	cfg.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
	st, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestSTANNeverRepeatsAcrossRestarts(t *testing.T) {
	st := openStore(t)
	seen := map[string]bool{}
	for run := 0; run < 3; run++ {
		tr := newTracer(st, "TERM0001")
		for i := 0; i < 2500; i++ {
			s, err := tr.nextSTAN(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != 6 || seen[s] {
				t.Fatalf("run %d: STAN %q repeated or malformed", run, s)
			}
			seen[s] = true
		}
	}
}

// TestSTANSharedByGateways: two connectors with the same terminal on one
// store never hand out the same STAN, and another terminal counts apart.
func TestSTANSharedByGateways(t *testing.T) {
	st := openStore(t)
	a, b, other := newTracer(st, "TERM0001"), newTracer(st, "TERM0001"), newTracer(st, "TERM0002")
	seen := map[string]bool{}
	for i := 0; i < 2*traceBlock+10; i++ {
		for _, tr := range []*tracer{a, b} {
			s, err := tr.nextSTAN(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if seen[s] {
				t.Fatalf("STAN %s handed out twice", s)
			}
			seen[s] = true
		}
	}
	if s, _ := other.nextSTAN(context.Background()); s != "000001" {
		t.Errorf("another terminal's first STAN %s, want 000001", s)
	}
}

func TestSTANWraps(t *testing.T) {
	st := openStore(t)
	if _, err := st.AdvanceCounter(context.Background(), stanCounter("T1"), 0, 999997); err != nil {
		t.Fatal(err)
	}
	tr := newTracer(st, "T1")
	var got []string
	for i := 0; i < 3; i++ {
		s, err := tr.nextSTAN(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if fmt.Sprint(got) != "[999998 999999 000001]" {
		t.Errorf("got %v", got)
	}
	// The reserve survives the wrap: a restart starts past it.
	s, _ := newTracer(st, "T1").nextSTAN(context.Background())
	if s <= "000001" || s > "001000" {
		t.Errorf("after restart %s, want in (000001, 001000]", s)
	}
}

func TestRRN(t *testing.T) {
	got := rrn(time.Date(2025, 11, 23, 19, 46, 1, 0, time.UTC), "000042")
	if got != "532719000042" {
		t.Errorf("rrn = %q", got)
	}
}

// TestMigrateStateDir: what a previous version left in files (the STAN
// counter, queued reversals) is moved into the store on start, the files
// removed, and a file the store cannot take set aside.
func TestMigrateStateDir(t *testing.T) {
	dir := t.TempDir()
	st := openStore(t)
	if err := os.MkdirAll(filepath.Join(dir, "reversals"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "stan"), []byte("5001\n"), 0o600)
	old := []Reversal{
		{OrigMTI: "0100", STAN: "004001", RRN: "532719004001", Transmission: "1123194601", LocalTime: "194601",
			LocalDate: "1123", ProcCode: "000000", Amount: 1250, Currency: "978", Terminal: "TERM0001",
			Merchant: "MERCHANT0000001", Reason: ReasonTimeout, RevSTAN: "004002", Attempts: 2, Created: time.Unix(10, 0)},
		{OrigMTI: "0200", STAN: "004003", RRN: "532719004003", Transmission: "1123194602", LocalTime: "194602",
			LocalDate: "1123", ProcCode: "000000", Amount: 990, Currency: "826", Terminal: "TERM0001",
			Merchant: "MERCHANT0000001", Reason: ReasonConnectionLost, RevSTAN: "004004", Created: time.Unix(5, 0)},
	}
	for _, r := range old {
		b, _ := json.Marshal(r)
		os.WriteFile(filepath.Join(dir, "reversals", r.id()+".json"), b, 0o600)
	}
	os.WriteFile(filepath.Join(dir, "reversals", "junk.json"), []byte("{"), 0o600)
	refused := old[0]
	refused.STAN, refused.Reason = "004005", "Timed out!"
	b, _ := json.Marshal(refused)
	os.WriteFile(filepath.Join(dir, "reversals", refused.id()+".json"), b, 0o600)

	for range 2 { // the second start finds nothing left to move
		if err := migrateStateDir(context.Background(), dir, "TERM0001", st, zap.NewNop()); err != nil {
			t.Fatal(err)
		}
	}
	got, err := st.ListReversals(context.Background())
	if err != nil || len(got) != 2 {
		t.Fatalf("store holds %+v, %v", got, err)
	}
	if got[0].STAN != "004003" || got[1].STAN != "004001" || got[1].Attempts != 2 || got[1].RevSTAN != "004002" ||
		got[1].Reason != ReasonTimeout || !got[1].CreatedAt.Equal(time.Unix(10, 0)) {
		t.Errorf("moved %+v", got)
	}
	if s, _ := newTracer(st, "TERM0001").nextSTAN(context.Background()); s != "005001" {
		t.Errorf("first STAN after the move %s, want 005001 where the file left off", s)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	left2, _ := filepath.Glob(filepath.Join(dir, "*"))
	if fmt.Sprint(left) != fmt.Sprint([]string{filepath.Join(dir, "reversals", "004005-1123194601.json.bad"), filepath.Join(dir, "reversals", "junk.json.bad")}) ||
		len(left2) != 1 {
		t.Errorf("left behind: %v %v", left2, left)
	}
	os.WriteFile(filepath.Join(dir, "stan"), []byte("x"), 0o600)
	if err := migrateStateDir(context.Background(), dir, "TERM0001", st, zap.NewNop()); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("a corrupt counter: %v", err)
	}
}

func TestHeader(t *testing.T) {
	for _, tc := range []struct {
		h    Header
		n    int
		wire string
	}{
		{Binary2, 300, "\x01\x2c"},
		{ASCII4, 300, "0300"},
	} {
		var buf bytes.Buffer
		if _, err := tc.h.WriteLength(&buf, tc.n); err != nil {
			t.Fatal(err)
		}
		if buf.String() != tc.wire {
			t.Errorf("%v: wrote %q", tc.h, buf.String())
		}
		n, err := tc.h.ReadLength(&buf)
		if err != nil || n != tc.n {
			t.Errorf("%v: read %d, %v", tc.h, n, err)
		}
	}
	if _, err := ASCII4.ReadLength(strings.NewReader("03a0")); err == nil {
		t.Error("ascii4 accepted a letter")
	}
	if _, err := Binary2.ReadLength(strings.NewReader("\xff\xff")); err == nil {
		t.Error("binary2 accepted 65535")
	}
	if _, err := ParseHeader("bcd"); err == nil {
		t.Error("ParseHeader accepted bcd")
	}
}

func TestReversalDelay(t *testing.T) {
	ms, sec := time.Millisecond, time.Second
	tests := []struct {
		first, max time.Duration
		want       []time.Duration
	}{
		{50 * ms, 200 * ms, []time.Duration{50 * ms, 100 * ms, 200 * ms, 200 * ms, 200 * ms}},
		{sec, time.Minute, []time.Duration{sec, 2 * sec, 4 * sec, 8 * sec, 16 * sec, 32 * sec, 60 * sec, 60 * sec}},
		{sec, sec, []time.Duration{sec, sec, sec}},
		{sec, 500 * ms, []time.Duration{500 * ms, 500 * ms, 500 * ms}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.first, "-", tt.max), func(t *testing.T) {
			var got []time.Duration
			for attempts := range tt.want {
				got = append(got, reversalDelay(Config{ReversalBackoff: tt.first, MaxReversalBackoff: tt.max}, attempts+1))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("waits %v, want %v", got, tt.want)
			}
		})
	}
	if d := reversalDelay(Config{ReversalBackoff: sec, MaxReversalBackoff: time.Hour}, 200); d != time.Hour {
		t.Errorf("after 200 attempts: %v", d)
	}
}

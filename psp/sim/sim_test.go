package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/psp"
)

var now = time.Date(2025, 11, 23, 19, 46, 1, 0, time.UTC)

func TestDecide(t *testing.T) {
	for _, tc := range []struct {
		pan    string
		yymm   string
		amount int64
		v      verdict
		code   string
		slow   bool
	}{
		{"4111111111111111", "3012", 1000, vAnswer, "00", false},
		{"5555555555554444", "2511", 1000, vAnswer, "00", false}, // valid through November
		{"378282246310005", "3012", 1000, vAnswer, "00", false},
		{"4000000000000002", "3012", 1000, vAnswer, "05", false},
		{"4000000000000069", "3012", 1000, vAnswer, "54", false},
		{"4111111111111111", "2510", 1000, vAnswer, "54", false},
		{"4111111111111111", "3013", 1000, vAnswer, "54", false},
		{"4111111111111111", "", 1000, vAnswer, "54", false},
		{"4111111111111111", "3012", 1051, vAnswer, "51", false},
		{"4111111111111111", "3012", DefaultLimit + 1, vAnswer, "51", false},
		{"4111111111111112", "3012", 1000, vAnswer, "14", false},
		{"41111111", "3012", 1000, vAnswer, "14", false},
		{"4000000000000119", "3012", 1000, vNoAnswer, "", false},
		{"4111111111111111", "3012", 99999, vNoAnswer, "", false},
		{"4000000000000127", "3012", 1000, vDisconnect, "", false},
		{"4000000000000135", "3012", 1000, vGarbage, "", false},
		{"4000000000000143", "3012", 1000, vNoCode, "", false},
		{"4000000000000135", "3012", 10202, vGarbage, "", false},
		{"4111111111111111", "3012", 10202, vAnswer, "00", true},
		{"4000000000000002", "3012", 20202, vAnswer, "05", true},
	} {
		v, code, slow := decide([]byte(tc.pan), []byte(tc.yymm), tc.amount, DefaultLimit, now)
		if v != tc.v || code != tc.code || slow != tc.slow {
			t.Errorf("%s %s %d: got %v %q %v, want %v %q %v", tc.pan, tc.yymm, tc.amount, v, code, slow, tc.v, tc.code, tc.slow)
		}
	}
}

func TestMask(t *testing.T) {
	for in, want := range map[string]string{
		"4111111111111111": "411111******1111",
		"378282246310005":  "378282*****0005",
		"411111":           "****",
		"4111a11111111111": "****", // only digits are shown
	} {
		if got := mask([]byte(in)); got != want {
			t.Errorf("mask(%s) = %s, want %s", in, got, want)
		}
	}
}

// request packs a message as the connector sends it, with the built-in
// telephone-order indicators of the card's brand.
func request(t testing.TB, mti, pan string, amount int64) []byte {
	moto, ok := psp.DefaultMOTO[brandOf([]byte(pan))]
	if !ok {
		moto = psp.OtherMOTO
	}
	return requestWith(t, mti, pan, amount, moto)
}

func requestWith(t testing.TB, mti, pan string, amount int64, moto psp.MOTO) []byte {
	m := iso8583.NewMessage(psp.Spec)
	m.MTI(mti)
	for id, v := range map[int]string{3: "000000", 4: fmt.Sprint(amount), 7: "1123194601", 11: "000042", 12: "194601",
		13: "1123", 37: "532719000042", 41: "TERM0001", 42: "MERCHANT0000001", 49: "978",
		22: moto.EntryMode, 25: moto.Condition, 60: moto.Field60, 61: moto.Field61} {
		if v != "" {
			m.Field(id, v)
		}
	}
	m.BinaryField(2, []byte(pan))
	m.BinaryField(14, []byte("3012"))
	m.BinaryField(126, []byte("737"))
	b, err := psp.Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandle(t *testing.T) {
	var log bytes.Buffer
	s := newServer(Config{Log: &log, Now: func() time.Time { return now }, SlowDelay: time.Second, Limit: DefaultLimit})
	reply, _, act := s.Handle(request(t, "0200", "4111111111111111", 1000))
	if act != Reply {
		t.Fatalf("act %v", act)
	}
	m, err := psp.Unpack(reply)
	if err != nil {
		t.Fatal(err)
	}
	mti, _ := m.GetMTI()
	rc, _ := m.GetString(39)
	auth, _ := m.GetString(38)
	stan, _ := m.GetString(11)
	if mti != "0210" || rc != "00" || len(auth) != 6 || stan != "000042" {
		t.Errorf("reply %s %s %q %s", mti, rc, auth, stan)
	}
	for _, id := range []int{2, 14, 126} {
		if m.GetField(id) != nil {
			t.Errorf("reply carries card data field %d", id)
		}
	}

	_, delay, _ := s.Handle(request(t, "0100", "4111111111111111", 10202))
	if delay != time.Second {
		t.Errorf("slow delay %v", delay)
	}
	if _, _, act := s.Handle(request(t, "0100", "4000000000000127", 1000)); act != Disconnect {
		t.Errorf("disconnect card: %v", act)
	}
	if _, _, act := s.Handle([]byte("garbage")); act != NoReply {
		t.Errorf("garbage: %v", act)
	}
	// The garbage card gets a reply that is not a message; the no-code
	// card a well-formed 0110 that lacks field 39.
	if reply, _, act := s.Handle(request(t, "0100", "4000000000000135", 1000)); act != Reply || len(reply) == 0 {
		t.Errorf("garbage card: %v %q", act, reply)
	} else if _, err := psp.Unpack(reply); err == nil {
		t.Errorf("garbage card: the reply unpacks")
	}
	if reply, _, act := s.Handle(request(t, "0100", "4000000000000143", 1000)); act != Reply {
		t.Errorf("no-code card: %v", act)
	} else if m, err := psp.Unpack(reply); err != nil {
		t.Errorf("no-code card: %v", err)
	} else if mti, _ := m.GetMTI(); mti != "0110" || m.GetField(39) != nil {
		rc, _ := m.GetString(39)
		t.Errorf("no-code card: %s with field 39 %q, want 0110 without it", mti, rc)
	}

	// A reversal of the 0200 above is acknowledged 00, of an unknown one 25.
	rev := func(orig string) string {
		m := iso8583.NewMessage(psp.Spec)
		m.MTI("0400")
		m.Field(11, "000050")
		m.Field(90, orig+"00000000000"+"00000000000")
		b, _ := psp.Pack(m)
		reply, _, _ := s.Handle(b)
		r, err := psp.Unpack(reply)
		if err != nil {
			t.Fatal(err)
		}
		rc, _ := r.GetString(39)
		return rc
	}
	if rc := rev("0200" + "000042" + "1123194601"); rc != "00" {
		t.Errorf("reversal of a known original: %s", rc)
	}
	if rc := rev("0200" + "000077" + "1123194601"); rc != "25" {
		t.Errorf("reversal of an unknown original: %s", rc)
	}
	st := s.Stats()
	if st.Reversals != 2 || fmt.Sprint(st.ReversedSTANs) != "[000042 000077]" || st.BadMessages != 1 || st.Disconnects != 1 || st.Garbled != 2 {
		t.Errorf("stats %+v", st)
	}
	out := log.String()
	if strings.Contains(out, "4111111111111111") || strings.Contains(out, "737") || !strings.Contains(out, "411111******1111") {
		t.Errorf("log:\n%s", out)
	}
}

// TestMOTOChecked: the simulator answers 30 to a request whose
// telephone-order indicators are not its brand's, and approves the same
// card sent with them.
func TestMOTOChecked(t *testing.T) {
	visa, mc := psp.DefaultMOTO["visa"], psp.DefaultMOTO["mastercard"]
	with := func(m psp.MOTO, f func(*psp.MOTO)) psp.MOTO { f(&m); return m }
	tests := []struct {
		name, pan string
		moto      psp.MOTO
		code      string
	}{
		{"visa as sent", "4111111111111111", visa, "00"},
		{"visa, other positions set", "4111111111111111", with(visa, func(m *psp.MOTO) { m.Field60 = "0100000001" }), "00"},
		{"visa 08: e-commerce", "4111111111111111", with(visa, func(m *psp.MOTO) { m.Field60 = "0000000008" }), "30"},
		{"visa field 60 alone", "4111111111111111", with(visa, func(m *psp.MOTO) { m.Field60 = "01" }), "30"},
		{"visa without field 60", "4111111111111111", psp.OtherMOTO, "30"},
		{"mastercard as sent", "5555555555554444", mc, "00"},
		{"mastercard 2-series", "2223000048400011", mc, "00"},
		{"mastercard mail order", "5555555555554444", with(mc, func(m *psp.MOTO) { m.Field61 = "203210000" }), "30"},
		{"mastercard card present", "5555555555554444", with(mc, func(m *psp.MOTO) { m.Field61 = "203300000" }), "30"},
		{"mastercard with visa's", "5555555555554444", visa, "30"},
		{"amex", "378282246310005", psp.OtherMOTO, "00"},
		{"magnetic stripe", "378282246310005", with(psp.OtherMOTO, func(m *psp.MOTO) { m.EntryMode = "902" }), "30"},
		{"card present", "4111111111111111", with(visa, func(m *psp.MOTO) { m.Condition = "00" }), "30"},
		{"declined card, bad indicators", "4000000000000002", psp.OtherMOTO, "30"},
	}
	var log bytes.Buffer
	s := newServer(Config{Log: &log, Now: func() time.Time { return now }, Limit: DefaultLimit})
	bad := 0
	for _, tt := range tests {
		reply, _, act := s.Handle(requestWith(t, "0100", tt.pan, 1000, tt.moto))
		if act != Reply {
			t.Fatalf("%s: %v", tt.name, act)
		}
		m, err := psp.Unpack(reply)
		if err != nil {
			t.Fatal(err)
		}
		if rc, _ := m.GetString(39); rc != tt.code {
			t.Errorf("%s: %s, want %s", tt.name, rc, tt.code)
		}
		if tt.code == "30" {
			bad++
		}
	}
	if st := s.Stats(); st.BadMOTO != int64(bad) {
		t.Errorf("bad_moto %d, want %d", st.BadMOTO, bad)
	}
	if !strings.Contains(log.String(), "positions 9-10") {
		t.Errorf("the log does not say what was wrong:\n%s", log.String())
	}
}

func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s := newServer(Config{StateFile: path, Now: time.Now, Limit: DefaultLimit})
	s.Handle(request(t, "0100", "4111111111111111", 1000))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st Stats
	if err := json.Unmarshal(b, &st); err != nil || st.Approved != 1 {
		t.Errorf("state %s: %v", b, err)
	}
	if strings.Contains(string(b), "4111111111111111") {
		t.Error("state file holds the PAN")
	}
}

type lockedBuffer = testutil.SyncBuffer

// FuzzHandle feeds arbitrary messages to the simulator's logic: no panic,
// replies unpack (but the garbage card's, by design), and a PAN it was
// sent never appears in its log.
func FuzzHandle(f *testing.F) {
	for _, tc := range []struct {
		mti, pan string
		amount   int64
	}{
		{"0100", "4111111111111111", 1000}, {"0200", "4000000000000002", 1051},
		{"0100", "4000000000000119", 99999}, {"0400", "4111111111111111", 1},
	} {
		f.Add(request(f, tc.mti, tc.pan, tc.amount))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		log := &lockedBuffer{}
		s := newServer(Config{Log: log, Now: func() time.Time { return now }, Limit: DefaultLimit, SlowDelay: time.Second})
		var pan []byte
		if m, err := psp.Unpack(raw); err == nil {
			if f, ok := m.GetField(2).(*psp.Sensitive); ok {
				pan, _ = f.Bytes()
			}
		}
		reply, _, act := s.Handle(raw)
		if act == Reply && !bytes.Equal(pan, cardGarbage) {
			if _, err := psp.Unpack(reply); err != nil {
				t.Fatalf("reply does not unpack: %v", err)
			}
		}
		// Only a PAN that appears once in the input (so not also in, say,
		// the RRN the log prints) must be absent from the log.
		if len(pan) >= 12 && bytes.Count(raw, pan) == 1 && bytes.Contains([]byte(log.String()), pan) {
			t.Fatalf("log shows the PAN:\n%s", log.String())
		}
	})
}

package oplog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Test card numbers only.
const (
	visa = "4111111111111111"
	mc   = "5555555555554444"
	amex = "378282246310005"
)

var cards = []string{visa, mc, amex}

// leaks reports the card numbers found in out, also with the separators
// taken out (so "4111 1111 1111 1111" is found) and JSON unescaped.
func leaks(out string) []string {
	flat := strings.NewReplacer(" ", "", "-", "", `\u0020`, "", `\n`, "").Replace(out)
	var found []string
	for _, c := range cards {
		if strings.Contains(out, c) || strings.Contains(flat, c) {
			found = append(found, c)
		}
	}
	return found
}

// lines splits the output into JSON objects, failing on invalid JSON.
func lines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var ms []map[string]any
	for l := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %v: %s", err, l)
		}
		ms = append(ms, m)
	}
	return ms
}

type stringer string

func (s stringer) String() string { return string(s) }

// verboseErr prints more with %+v, like github.com/pkg/errors.
type verboseErr struct{ msg, detail string }

func (e verboseErr) Error() string { return e.msg }
func (e verboseErr) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('+') {
		fmt.Fprintf(f, "%s\n%s", e.msg, e.detail)
		return
	}
	fmt.Fprint(f, e.msg)
}

type card struct {
	Holder string         `json:"holder"`
	Number string         `json:"number"`
	Raw    int64          `json:"raw"`
	Tags   map[string]any `json:"tags"`
}

type session struct{ id, pan string }

func (s session) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", s.id)
	enc.AddString("digits", s.pan)
	enc.AddByteString("bytes", []byte(s.pan))
	return enc.AddArray("history", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		a.AppendString(s.pan)
		a.AppendByteString([]byte(s.pan))
		a.AppendInt64(4111111111111111)
		a.AppendUint64(5555555555554444)
		return a.AppendObject(zapcore.ObjectMarshalerFunc(func(o zapcore.ObjectEncoder) error {
			o.AddString("deep", s.pan)
			return o.AddReflected("refl", card{Number: s.pan})
		}))
	}))
}

type errGroup []error

func (g errGroup) Error() string   { return "several" }
func (g errGroup) Errors() []error { return g }

func TestRedactingEncoder(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, zapcore.DebugLevel).With(zap.String("ctx", "pan "+mc), zap.Int64("ctxint", 5555555555554444))
	log.Info("customer read " + visa + " to the agent")
	log.Info("spaced 4111 1111 1111 1111, dashed 5555-5555-5555-4444, amex 3782 822463 10005")
	log.Info("fields",
		zap.String("s", "card="+visa),
		zap.Strings("list", []string{visa, "ok", mc}),
		zap.Stringer("str", stringer(amex)),
		zap.ByteString("bs", []byte(visa)),
		zap.Binary("bin", []byte(visa)),
		zap.Int("int", 4111111111111111),
		zap.Int64("neg", -4111111111111111),
		zap.Uint64("u64", 5555555555554444),
		zap.Int64s("ints", []int64{4111111111111111, 42}),
		zap.Any("struct", card{Holder: "A N Other", Number: "4111 1111 1111 1111", Raw: 378282246310005, Tags: map[string]any{visa: mc}}),
		zap.Reflect("map", map[string]string{"n": mc}),
		zap.Object("obj", session{"s-1", visa}),
		zap.Inline(session{"s-2", mc}),
		zap.Dict("dict", zap.String("d", amex)),
		zap.Namespace("ns"),
		zap.String("inns", visa),
	)
	log.Error("errors",
		zap.Error(fmt.Errorf("authorize: card %s: declined", visa)),
		zap.NamedError("verbose", verboseErr{"short", "long form with " + mc}),
		zap.NamedError("group", errGroup{errors.New("first " + visa), errors.New("second " + amex)}),
	)
	log.Sugar().Infof("sugar %s", visa)
	log.Sugar().Infow("sugarw", "k", mc, "n", 378282246310005)
	log.Named("name" + visa).Warn("named")

	out := buf.String()
	if l := leaks(out); l != nil {
		t.Errorf("card numbers %v in the log:\n%s", l, out)
	}
	ms := lines(t, out)
	if len(ms) != 7 {
		t.Fatalf("%d lines:\n%s", len(ms), out)
	}
	want := map[string]string{
		"msg": "customer read 411111******1111 to the agent", "ctx": "pan 555555******4444", "ctxint": "555555******4444",
	}
	for k, v := range want {
		if ms[0][k] != v {
			t.Errorf("%s = %v, want %q", k, ms[0][k], v)
		}
	}
	if got := ms[1]["msg"]; got != "spaced 4111 11** **** 1111, dashed 5555-55**-****-4444, amex 3782 82**** *0005" {
		t.Errorf("msg = %q", got)
	}
	f := ms[2]
	for k, v := range map[string]any{
		"s": "card=411111******1111", "str": "378282*****0005", "bs": "411111******1111",
		"int": "411111******1111", "neg": "-411111******1111", "u64": "555555******4444",
		"digits": "555555******4444", // inlined session
	} {
		if f[k] != v {
			t.Errorf("%s = %#v, want %q", k, f[k], v)
		}
	}
	if got := fmt.Sprint(f["list"]); got != "[411111******1111 ok 555555******4444]" {
		t.Errorf("list = %s", got)
	}
	if got := fmt.Sprint(f["bin"]); got != "NDExMTExKioqKioqMTExMQ==" { // base64 of the masked bytes
		t.Errorf("bin = %s", got)
	}
	if ns, _ := f["ns"].(map[string]any); ns["inns"] != "411111******1111" {
		t.Errorf("namespace = %v", f["ns"])
	}
	if ms[3]["error"] != "authorize: card 411111******1111: declined" {
		t.Errorf("error = %v", ms[3]["error"])
	}
	if !strings.Contains(fmt.Sprint(ms[3]["verboseVerbose"]), "555555******4444") {
		t.Errorf("verbose error = %v", ms[3]["verboseVerbose"])
	}
	if ms[4]["msg"] != "sugar 411111******1111" || ms[5]["k"] != "555555******4444" || ms[5]["n"] != "378282*****0005" {
		t.Errorf("sugar: %v, %v", ms[4], ms[5])
	}
	if ms[6]["logger"] != "name411111******1111" {
		t.Errorf("logger = %v", ms[6]["logger"])
	}
	if ms[3]["stacktrace"] == nil || ms[0]["caller"] == nil || ms[0]["ts"] == nil || ms[0]["level"] != "info" {
		t.Errorf("line layout: %v / %v", ms[0], ms[3])
	}
}

func TestNotCardNumbersUntouched(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, zapcore.InfoLevel)
	texts := []string{
		"call from +44 20 7946 0958",
		"caller 020 7946 0958 ext 1234",
		"order 2024-000123-4567 reference 987654321012",
		"not luhn 4111111111111112 or 4111 1111 1111 1112",
		"id 1732390000123456789 too long 41111111111111110000",
		"uuid 123e4567-e89b-12d3-a456-426614174000",
		"ts 2025-11-23T19:46:01.123456789Z",
	}
	for _, s := range texts {
		log.Info(s, zap.String("f", s), zap.Int64("n", 4111111111111112))
	}
	ms := lines(t, buf.String())
	for i, s := range texts {
		if ms[i]["msg"] != s || ms[i]["f"] != s || ms[i]["n"] != float64(4111111111111112) {
			t.Errorf("changed: %v", ms[i])
		}
	}
	// A struct with no card number is encoded as zap would: key order kept.
	buf.Reset()
	log.Info("s", zap.Any("c", card{Holder: "B", Number: "12 34"}))
	if !strings.Contains(buf.String(), `"c":{"holder":"B","number":"12 34","raw":0,"tags":null}`) {
		t.Errorf("struct changed: %s", buf.String())
	}
}

func TestLevel(t *testing.T) {
	var buf bytes.Buffer
	lvl := zap.NewAtomicLevelAt(zapcore.WarnLevel)
	log := New(&buf, lvl)
	log.Info("hidden")
	log.Warn("shown")
	lvl.SetLevel(zapcore.DebugLevel)
	log.Debug("now shown")
	ms := lines(t, buf.String())
	if len(ms) != 2 || ms[0]["msg"] != "shown" || ms[1]["msg"] != "now shown" {
		t.Errorf("%v", ms)
	}
}

func TestSlog(t *testing.T) {
	var buf bytes.Buffer
	core := NewCore(&buf, zapcore.InfoLevel)
	sl := NewSlog(core, "sipgo")
	sl.Debug("hidden " + visa)
	sl.Info("INVITE with "+visa, "header", "X-Card: "+mc, "n", int64(378282246310005), "err", errors.New("bad "+visa))
	sl.With("call", "c-1", "with", amex).WithGroup("dialog").Warn("group", "pan", visa, slog.Group("g", "inner", mc))
	sl.Log(context.Background(), slog.LevelError, "err", slog.Any("any", card{Number: visa}))

	out := buf.String()
	if l := leaks(out); l != nil {
		t.Errorf("card numbers %v in the log:\n%s", l, out)
	}
	ms := lines(t, out)
	if len(ms) != 3 {
		t.Fatalf("%d lines:\n%s", len(ms), out)
	}
	m := ms[0]
	if m["logger"] != "sipgo" || m["msg"] != "INVITE with 411111******1111" || m["header"] != "X-Card: 555555******4444" ||
		m["n"] != "378282*****0005" || m["err"] != "bad 411111******1111" || m["caller"] == nil {
		t.Errorf("slog line: %v", m)
	}
	g, _ := ms[1]["dialog"].(map[string]any)
	if ms[1]["with"] != "378282*****0005" || g["pan"] != "411111******1111" {
		t.Errorf("slog group line: %v", ms[1])
	}
}

func TestRedactingIdempotentWrap(t *testing.T) {
	e := NewEncoder(EncoderConfig())
	if Redacting(e) != e {
		t.Error("Redacting wrapped a redacting encoder twice")
	}
	if Redact("x "+visa) != "x 411111******1111" {
		t.Error("Redact")
	}
}

func BenchmarkLog(b *testing.B) {
	for _, bc := range []struct {
		name string
		enc  zapcore.Encoder
	}{
		{"zap-json", zapcore.NewJSONEncoder(EncoderConfig())},
		{"redacting", NewEncoder(EncoderConfig())},
	} {
		b.Run(bc.name, func(b *testing.B) {
			log := zap.New(zapcore.NewCore(bc.enc, zapcore.AddSync(discard{}), zapcore.InfoLevel))
			for b.Loop() {
				log.Info("field completed on call", zap.String("call_id", "c-7f3a9e"), zap.String("field", "card_number"), zap.Int("digits", 16))
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

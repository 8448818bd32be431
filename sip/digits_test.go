package sip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/dtmf"
)

func TestParseDigits(t *testing.T) {
	const (
		relay  = "application/dtmf-relay"
		plain  = "application/dtmf"
		nortel = "application/vnd.nortelnetworks.digits"
		event  = "audio/telephone-event"
		kpml   = "application/kpml-response+xml"
	)
	kpmlDoc := func(attrs string) string {
		return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
			`<kpml-response xmlns="urn:ietf:params:xml:ns:kpml-response" version="1.0" ` + attrs + `/>`
	}
	tests := []struct {
		name, ct, body string
		rate           int
		want           string // digits, in order
		wantDur        time.Duration
		wantEvent      bool
		wantEnd        bool
		wantErr        bool
	}{
		{name: "relay", ct: relay, body: "Signal=5\r\nDuration=160\r\n", want: "5", wantDur: 160 * time.Millisecond},
		{name: "relay lower case, space around =", ct: relay, body: "signal = *\nduration= 100", want: "*", wantDur: 100 * time.Millisecond},
		{name: "relay on one line", ct: relay, body: "Signal=9 Duration=250", want: "9"},
		{name: "relay code 10", ct: relay, body: "Signal=10\r\n", want: "*"},
		{name: "relay code 11", ct: relay, body: "Signal=11\r\n", want: "#"},
		{name: "relay code 12 is A (RFC 4733)", ct: relay, body: "Signal=12\r\n", want: "A"},
		{name: "relay code 15 is D", ct: relay, body: "Signal=15\r\n", want: "D"},
		{name: "relay lower-case letter, bad duration", ct: relay, body: "Signal=a\r\nDuration=-5\r\n", want: "A"},
		{name: "relay code 16 (flash)", ct: relay, body: "Signal=16\r\n", wantErr: true},
		{name: "relay not a key", ct: relay, body: "Signal=E\r\n", wantErr: true},
		{name: "relay two signals", ct: relay, body: "Signal=1\r\nSignal=2\r\n", wantErr: true},
		{name: "relay no signal", ct: relay, body: "Duration=160\r\n", wantErr: true},
		{name: "relay empty", ct: relay, body: "", wantErr: true},
		{name: "dtmf-info (the relay body under another name)", ct: "application/dtmf-info", body: "Signal=8\r\nDuration=500\r\n", want: "8", wantDur: 500 * time.Millisecond},
		{name: "dtmf", ct: plain, body: "7", want: "7"},
		{name: "dtmf padded", ct: plain, body: " #\r\n", want: "#"},
		{name: "dtmf code", ct: plain, body: "11", want: "#"},
		{name: "dtmf two digits", ct: plain, body: "77", wantErr: true},
		{name: "nortel", ct: nortel, body: "d=3\r\n", want: "3"},
		{name: "nortel upper-case name", ct: nortel, body: "D= 0", want: "0"},
		{name: "nortel with other lines", ct: nortel, body: "p=1\r\nd=#\r\n", want: "#"},
		{name: "nortel without d", ct: nortel, body: "signal=3\r\n", wantErr: true},
		{name: "event start", ct: event, body: "\x07\x0a\x00\xa0", rate: 8000, want: "7", wantDur: 20 * time.Millisecond, wantEvent: true},
		{name: "event end", ct: event, body: "\x0b\x8a\x06\x40", rate: 8000, want: "#", wantDur: 200 * time.Millisecond, wantEvent: true, wantEnd: true},
		{name: "event, Cisco milliseconds", ct: event, body: "\x07\x00\x07\xd0", rate: 1000, want: "7", wantDur: 2 * time.Second, wantEvent: true},
		{name: "event, two blocks", ct: event, body: "\x01\x00\x00\xa0\x01\x80\x03\x20", rate: 8000, want: "1", wantDur: 20 * time.Millisecond, wantEvent: true},
		{name: "event flash", ct: event, body: "\x10\x00\x00\xa0", rate: 8000, wantErr: true},
		{name: "event short", ct: event, body: "\x07\x0a\x00", rate: 8000, wantErr: true},
		{name: "event odd length", ct: event, body: "\x07\x0a\x00\xa0\x00", rate: 8000, wantErr: true},
		{name: "kpml one digit", ct: kpml, body: kpmlDoc(`code="200" text="OK" digits="4" tag="dtmf"`), want: "4"},
		{name: "kpml several digits", ct: kpml, body: kpmlDoc(`code="200" text="OK" digits="41#"`), want: "41#"},
		{name: "kpml timeout keeps what was typed", ct: kpml, body: kpmlDoc(`code="423" text="Timer Expired" digits="12"`), want: "12"},
		{name: "kpml no digits", ct: kpml, body: kpmlDoc(`code="487" text="Subscription Expired"`), want: ""},
		{name: "kpml without namespace", ct: kpml, body: `<kpml-response version="1.0" code="200" digits="9"/>`, want: "9"},
		{name: "kpml other namespace", ct: kpml, body: `<kpml-response xmlns="urn:example" code="200" digits="9"/>`, wantErr: true},
		{name: "kpml bad digit", ct: kpml, body: kpmlDoc(`code="200" digits="4x"`), wantErr: true},
		{name: "kpml no code", ct: kpml, body: kpmlDoc(`digits="4"`), wantErr: true},
		{name: "kpml other element", ct: kpml, body: `<kpml-request version="1.0"/>`, wantErr: true},
		{name: "kpml entity", ct: kpml, body: `<!DOCTYPE x [<!ENTITY e "5">]><kpml-response code="200" digits="&e;"/>`, wantErr: true},
		{name: "kpml not xml", ct: kpml, body: `digits=4`, wantErr: true},
		{name: "too long", ct: relay, body: "Signal=5\r\n" + strings.Repeat(" ", maxDigitBody), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := digitTypes[tt.ct]
			if f == formatNone {
				t.Fatalf("%s is not a key-press type", tt.ct)
			}
			rs, err := parseDigits(f, []byte(tt.body), tt.rate)
			if tt.wantErr {
				if !errors.Is(err, ErrBadDTMFInfo) {
					t.Fatalf("err = %v, reports %v; want ErrBadDTMFInfo", err, rs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			for _, r := range rs {
				got = append(got, byte(r.digit))
			}
			if string(got) != tt.want {
				t.Fatalf("digits %q, want %q", got, tt.want)
			}
			if len(rs) == 1 && (rs[0].dur != tt.wantDur || rs[0].event != tt.wantEvent || rs[0].end != tt.wantEnd) {
				t.Errorf("report %+v, want dur %v event %v end %v", rs[0], tt.wantDur, tt.wantEvent, tt.wantEnd)
			}
		})
	}
}

// TestDigitErrorsHoldNoDigit: no error of the body readers quotes the
// body, so a key press never reaches a log through one.
func TestDigitErrorsHoldNoDigit(t *testing.T) {
	bodies := []struct{ ct, body string }{
		{"application/dtmf-relay", "Signal=7777\r\n"},
		{"application/dtmf", "7777"},
		{"application/kpml-response+xml", `<kpml-response code="200" digits="7777x"/>`},
		{"multipart/mixed;boundary=7777", "--7777\r\nContent-Type: application/dtmf\r\n\r\n7777"},
		{"multipart/mixed;boundary=\"7777", "7777"},
	}
	quotes := func(err error) bool { return strings.Contains(err.Error(), "7") }
	// The check can fail: an error that quotes what it read is caught.
	if !quotes(errors.New("sip: bad signal 7777")) {
		t.Fatal("the check does not see a digit in an error")
	}
	for _, b := range bodies {
		_, _, err := digitsOf(bodyRequest(sip.INFO, b.ct, b.body), 8000)
		if err == nil {
			t.Errorf("%s %q: no error", b.ct, b.body)
			continue
		}
		if quotes(err) {
			t.Errorf("%s: error %q holds a digit of the body", b.ct, err)
		}
	}
}

// bodyRequest is an in-dialog request with a body of type ct.
func bodyRequest(m sip.RequestMethod, ct, body string) *sip.Request {
	req := sip.NewRequest(m, sip.Uri{Scheme: "sip", User: "a", Host: "b"})
	if ct != "" {
		h := sip.ContentTypeHeader(ct)
		req.AppendHeader(&h)
	}
	req.SetBody([]byte(body))
	return req
}

// TestPressTracker: RFC 4733 reports carried in SIP are one digit per
// press whether a sender reports a press once, at start and end, or with
// refreshes; and two presses of one digit stay two.
func TestPressTracker(t *testing.T) {
	type step struct {
		at      time.Duration
		digit   dtmf.Digit
		end     bool
		dur     time.Duration
		wantNew bool
	}
	ms := time.Millisecond
	tests := []struct {
		name  string
		steps []step
	}{
		{"one report per press (E bit)", []step{
			{0, '4', true, 100 * ms, true}, {300 * ms, '4', true, 100 * ms, true}, {600 * ms, '2', true, 100 * ms, true}}},
		{"start and end (Cisco)", []step{
			{0, '7', false, 2000 * ms, true}, {120 * ms, '7', true, 120 * ms, false},
			{400 * ms, '7', false, 2000 * ms, true}, {520 * ms, '7', true, 120 * ms, false}}},
		{"refresh while held", []step{
			{0, '5', false, 2000 * ms, true}, {2000 * ms, '5', false, 2000 * ms, false}, {3000 * ms, '5', true, 3000 * ms, false}}},
		{"start without end, then another digit", []step{
			{0, '1', false, 500 * ms, true}, {200 * ms, '2', false, 500 * ms, true}, {300 * ms, '2', true, 100 * ms, false}}},
		{"start whose end never came, same digit much later", []step{
			{0, '1', false, 200 * ms, true}, {2 * time.Second, '1', false, 200 * ms, true}}},
		{"start without end: same digit within the announced time is the same press", []step{
			{0, '9', false, 2000 * ms, true}, {1500 * ms, '9', false, 2000 * ms, false}}},
		{"end without start", []step{{0, '3', true, 80 * ms, true}}},
		{"start reports an hour long are bounded", []step{
			{0, '6', false, time.Hour, true}, {maxPressWait + pressSlack + ms, '6', false, time.Hour, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p pressTracker
			t0 := time.Unix(1000, 0)
			for i, s := range tt.steps {
				got := p.add(digitReport{digit: s.digit, dur: s.dur, event: true, end: s.end}, t0.Add(s.at))
				if got != s.wantNew {
					t.Errorf("step %d (%c end=%v at %v): new press = %v, want %v", i, s.digit, s.end, s.at, got, s.wantNew)
				}
			}
		})
	}
}

package caller

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// Test card data (never real): PAN, expiry, CVV, typed as a customer
// does, '#' after each field.
const (
	testPAN  = "4111111111111111"
	testCVV  = "737"
	testKeys = testPAN + "#1230#" + testCVV + "#"
)

// cvvRE finds the CVV as a number of its own in output (ports and times
// contain other digits).
var cvvRE = regexp.MustCompile(`(^|[^0-9])` + testCVV + `([^0-9]|$)`)

type syncBuffer = testutil.SyncBuffer

// checkNoCard fails when output shows the card.
func checkNoCard(t *testing.T, output string) {
	t.Helper()
	if strings.Contains(output, testPAN) || cvvRE.MatchString(output) {
		t.Errorf("output shows card data:\n%s", output)
	}
}

func dial(t *testing.T, o Options) *Call {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func hangup(t *testing.T, c *Call, u *callertest.UAS) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Hangup(ctx); err != nil {
		t.Errorf("Hangup: %v", err)
	}
	select {
	case <-u.ByeReceived():
	case <-time.After(5 * time.Second):
		t.Error("UAS got no BYE")
	}
	select {
	case <-c.Done():
	default:
		t.Error("Done not closed after Hangup")
	}
}

// TestTypeModes types a card in each mode, with human random timing, and
// checks that the far end gets exactly those digits, once, and nothing in
// the other two ways.
func TestTypeModes(t *testing.T) {
	tests := []struct {
		mode    Mode
		network string
	}{
		{InBand, "udp"},
		{RFC4733, "udp"},
		{Info, "udp"},
		{InBand, "tcp"},
		{Info, "tcp"},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String()+"/"+tc.network, func(t *testing.T) {
			t.Parallel()
			u := callertest.NewUAS(t, callertest.UASOptions{Network: tc.network})
			var out syncBuffer
			c := dial(t, Options{Target: u.Target(), Transport: tc.network, Progress: &out, Timing: Timing{Seed: 42}})
			digits := []byte(testKeys)
			if err := c.Type(context.Background(), digits, tc.mode); err != nil {
				t.Fatalf("Type: %v", err)
			}
			if string(digits) != testKeys {
				t.Error("Type changed its argument")
			}
			hangup(t, c, u)

			pkts := u.Packets()
			if len(pkts) == 0 {
				t.Fatal("no RTP reached the UAS")
			}
			inband, events, infos := u.InBandDigits(), u.EventDigits(t), u.InfoDigits(t, 80, 150)
			want := map[Mode]*[]byte{InBand: &inband, RFC4733: &events, Info: &infos}
			for m, got := range want {
				w := ""
				if m == tc.mode {
					w = testKeys
				}
				if string(*got) != w {
					t.Errorf("%v digits at the UAS: got %d digits, equal to typed: %v; want %d", m, len(*got), string(*got) == testKeys, len(w))
				}
			}
			if tc.mode == InBand {
				// The UAS echoes our audio: the receive path decodes it.
				if got := callertest.Detect(c.Received()); string(got) != testKeys {
					t.Errorf("echoed audio: %d digits detected, want %d", len(got), len(testKeys))
				}
			}
			checkStream(t, pkts)
			checkNoCard(t, out.String())
			// "ringing" is not required: sipgo may hand over the 200
			// before a 180 that arrived just ahead of it.
			for _, step := range []string{"dialing", "answered", fmt.Sprintf("typing %d digits", len(testKeys)), "hung up"} {
				if !strings.Contains(out.String(), step) {
					t.Errorf("progress lacks %q:\n%s", step, out.String())
				}
			}
		})
	}
}

// checkStream checks our RTP as one valid stream: one SSRC, sequence
// numbers one apart in arrival order (loopback does not reorder), and
// every telephone-event press shaped by RFC 4733: marker on its first
// packet only, one timestamp, growing durations, three End packets.
func checkStream(t *testing.T, pkts []rtp.Packet) {
	t.Helper()
	for i := 1; i < len(pkts); i++ {
		if pkts[i].SSRC != pkts[0].SSRC {
			t.Fatalf("packet %d: SSRC changed", i)
		}
		if pkts[i].SequenceNumber != pkts[i-1].SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, pkts[i].SequenceNumber, pkts[i-1].SequenceNumber)
		}
	}
	for i := 0; i < len(pkts); {
		if pkts[i].PayloadType != ptEvent {
			i++
			continue
		}
		j := i
		for j < len(pkts) && pkts[j].PayloadType == ptEvent && pkts[j].Timestamp == pkts[i].Timestamp {
			j++
		}
		ev := pkts[i:j]
		if !ev[0].Marker || slices.ContainsFunc(ev[1:], func(p rtp.Packet) bool { return p.Marker }) {
			t.Errorf("event at ts %d: marker not on the first packet only", ev[0].Timestamp)
		}
		ends := 0
		var last uint16
		for _, p := range ev {
			dur := uint16(p.Payload[2])<<8 | uint16(p.Payload[3])
			if dur < last {
				t.Errorf("event at ts %d: duration went down", ev[0].Timestamp)
			}
			last = dur
			if p.Payload[1]&0x80 != 0 {
				ends++
			}
		}
		if ends != 3 {
			t.Errorf("event at ts %d: %d End packets, want 3", ev[0].Timestamp, ends)
		}
		if j < len(pkts) && pkts[j].PayloadType == ptPCMU && pkts[j].Timestamp-ev[0].Timestamp != uint32(len(ev))*frame {
			t.Errorf("audio after event at ts %d resumes at +%d, want +%d", ev[0].Timestamp, pkts[j].Timestamp-ev[0].Timestamp, len(ev)*frame)
		}
		i = j
	}
}

// TestShowDigits proves the card check can fail: with ShowDigits the
// digits are printed.
func TestShowDigits(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	var out syncBuffer
	c := dial(t, Options{Target: u.Target(), Progress: &out, ShowDigits: true,
		Timing: Timing{Press: 40 * time.Millisecond, Gap: 40 * time.Millisecond}})
	if err := c.Type(context.Background(), []byte(testPAN), Info); err != nil {
		t.Fatal(err)
	}
	hangup(t, c, u)
	if !strings.Contains(out.String(), testPAN) {
		t.Errorf("ShowDigits did not show the digits:\n%s", out.String())
	}
}

func TestBusy(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{Code: 486})
	var out syncBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, Options{Target: u.Target(), Progress: &out})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 486 {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial = %v, want a 486 StatusError", err)
	}
	checkNoCard(t, out.String())
}

// TestRemoteBye: the far end hangs up while we type.
func TestRemoteBye(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	var out syncBuffer
	c := dial(t, Options{Target: u.Target(), Progress: &out, Timing: Timing{Seed: 1}})
	errc := make(chan error, 1)
	go func() { errc <- c.Type(context.Background(), []byte(testKeys), InBand) }()
	u.Dialog(t)
	u.Bye(t)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the far end's BYE")
	}
	if err := <-errc; !errors.Is(err, ErrHungUp) {
		t.Errorf("Type = %v, want ErrHungUp", err)
	}
	if !c.RemoteHangup() {
		t.Error("RemoteHangup false")
	}
	if err := c.Hangup(context.Background()); err != nil {
		t.Errorf("Hangup after the far end's BYE: %v", err)
	}
	if !strings.Contains(out.String(), "far end hung up") {
		t.Errorf("progress lacks the note:\n%s", out.String())
	}
	if err := c.Type(context.Background(), []byte("1"), InBand); !errors.Is(err, ErrHungUp) {
		t.Errorf("Type after the end = %v, want ErrHungUp", err)
	}
}

// TestHold: a re-INVITE putting us on hold gets 200 recvonly and stops
// our audio; resuming brings it back.
func TestHold(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	c := dial(t, Options{Target: u.Target()})
	tests := []struct {
		theirs, ours string
		sending      bool
	}{
		{"sendonly", "recvonly", false},
		{"inactive", "inactive", false},
		{"sendrecv", "sendrecv", true},
	}
	for _, tc := range tests {
		body := u.Reinvite(t, tc.theirs)
		st, err := parseSDP(body)
		if err != nil {
			t.Fatalf("answer to %s: %v", tc.theirs, err)
		}
		if st.dir != tc.ours {
			t.Errorf("answer to %s: direction %s, want %s", tc.theirs, st.dir, tc.ours)
		}
		if st.addr != c.LocalRTP() {
			t.Errorf("answer to %s: RTP %v, want %v", tc.theirs, st.addr, c.LocalRTP())
		}
		c.media.mu.Lock()
		sending := c.media.send
		c.media.mu.Unlock()
		if sending != tc.sending {
			t.Errorf("after %s: sending %v, want %v", tc.theirs, sending, tc.sending)
		}
	}
	hangup(t, c, u)
}

func TestNoTelephoneEvent(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{NoEvents: true})
	c := dial(t, Options{Target: u.Target()})
	if err := c.Type(context.Background(), []byte("1"), RFC4733); err == nil {
		t.Error("RFC4733 typed without telephone-event negotiated")
	}
	hangup(t, c, u)
}

func TestDialOptionErrors(t *testing.T) {
	tests := []struct {
		name string
		o    Options
	}{
		{"transport", Options{Transport: "sctp"}},
		{"target", Options{Target: "tel:+15551234"}},
		{"local", Options{Local: "localhost:0"}},
		{"from", Options{From: "not a uri"}},
		{"tone", Options{ToneLow: 3, ToneHigh: -6}},
		{"press", Options{Timing: Timing{Press: time.Millisecond}}},
		{"header name", Options{Headers: []Header{{"X Bad", "1"}}}},
		{"reserved header", Options{Headers: []Header{{"Call-ID", "mine"}}}},
		{"header injection", Options{Headers: []Header{{"X-Interaction-ID", "1\r\nVia: x"}}}},
		{"too many headers", Options{Headers: make([]Header, MaxHeaders+1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Dial(context.Background(), tc.o)
			if err == nil {
				c.Close()
				t.Fatal("Dial accepted bad options")
			}
		})
	}
}

// TestHeaders: headers given in Options reach the far end in the INVITE,
// repeated ones in order.
func TestHeaders(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	c := dial(t, Options{Target: u.Target(), Headers: []Header{
		{"X-Interaction-ID", "demo-1"}, {"User-to-User", "56a390f3;encoding=hex"}, {"X-Tag", "a"}, {"X-Tag", "b"},
	}})
	hangup(t, c, u)
	for name, want := range map[string][]string{
		"X-Interaction-ID": {"demo-1"},
		"x-interaction-id": {"demo-1"},
		"User-to-User":     {"56a390f3;encoding=hex"},
		"X-Tag":            {"a", "b"},
		"X-Absent":         nil,
	} {
		if got := u.InviteHeader(name); !slices.Equal(got, want) {
			t.Errorf("INVITE %s: %q, want %q", name, got, want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in      string
		want    Header
		wantErr string
	}{
		{"X-Interaction-ID: demo-1", Header{"X-Interaction-ID", "demo-1"}, ""},
		{"  X-A :b: c  ", Header{"X-A", "b: c"}, ""},
		{"X-Empty:", Header{"X-Empty", ""}, ""},
		{"no colon", Header{}, "want Name: value"},
		{": value", Header{}, "empty name"},
		{"X(1): v", Header{}, "the name may hold"},
		{"via: SIP/2.0/UDP 1.2.3.4", Header{}, "written by the caller"},
		{"i: x", Header{}, "written by the caller"},
		{"X-A: a\x00b", Header{}, "control character"},
	}
	for _, tc := range tests {
		got, err := ParseHeader(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseHeader(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("ParseHeader(%q) error %v, want one saying %q", tc.in, err, tc.wantErr)
		}
	}
}

// TestTypeBadDigit: nothing is sent, and the error names the position
// only.
func TestTypeBadDigit(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	c := dial(t, Options{Target: u.Target()})
	err := c.Type(context.Background(), []byte("41111x"), Info)
	if err == nil || !strings.Contains(err.Error(), "digit 6 of 6") || strings.Contains(err.Error(), "41111") {
		t.Errorf("Type = %v", err)
	}
	hangup(t, c, u)
	if got := u.InfoDigits(t, 0, 1000); len(got) != 0 {
		t.Errorf("%d INFOs sent for bad digits", len(got))
	}
}

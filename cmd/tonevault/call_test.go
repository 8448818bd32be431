package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/dtmf/wav"
	"github.com/tonevault/tonevault/sip/caller/callertest"
)

// Test card typed by the call tests: PAN, expiry, CVV.
const (
	callPAN  = "4111111111111111"
	callCVV  = "737"
	callKeys = callPAN + "#1230#" + callCVV + "#"
)

var callCVVRE = regexp.MustCompile(`(^|[^0-9])` + callCVV + `([^0-9]|$)`)

func runCallCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"call"}, args...), &out, &errb)
	all := out.String() + errb.String()
	if strings.Contains(all, callPAN) || callCVVRE.MatchString(all) {
		t.Errorf("tonevault call %v printed card data:\n%s", args, all)
	}
	return code, out.String(), errb.String()
}

func TestCallHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}} {
		code, out, _ := runCallCmd(t, args...)
		if code != 0 || !strings.HasPrefix(out, "Usage: tonevault call") || !strings.Contains(out, "--dtmf MODE") {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
	}
	var out bytes.Buffer
	if run([]string{"help", "call"}, &out, &out) != 0 || !strings.Contains(out.String(), "--show-digits") {
		t.Error("tonevault help call shows no call usage")
	}
}

func TestCallUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.wav")
	regular := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--dtmf", "bogus"}, "--dtmf"},
		{[]string{"--transport", "sctp"}, "transport"},
		{[]string{"--nope"}, "flag provided but not defined"},
		{[]string{"sip:a@127.0.0.1:9", "sip:b@127.0.0.1:9"}, "at most one URI"},
		{[]string{"--to", "sip:a@127.0.0.1:9", "sip:b@127.0.0.1:9"}, "not both"},
		{[]string{"--digits", callPAN[:6] + "x"}, "key 7 of 7"},
		{[]string{"--digits", strings.Repeat("1", 65)}, "at most 64"},
		{[]string{"--press", "1ms"}, "press length"},
		{[]string{"--gap", "20s"}, "gap"},
		{[]string{"--level", "loud"}, "--level"},
		{[]string{"--level", "3,-6"}, "tone level"},
		{[]string{"--local", "localhost:0"}, "local address"},
		{[]string{"tel:+15551234"}, "not a sip: or sips: URI"},
		{[]string{"--audio", missing}, "no such file"},
		{[]string{"--wait", "-1s"}, "--wait"},
		{[]string{"--header", "X-Interaction-ID"}, "want Name: value"},
		{[]string{"--header", "Call-ID: mine"}, "written by the caller"},
		{[]string{"--keypad", filepath.Join(t.TempDir(), "k"), "--digits", "1#"}, "not both"},
		{[]string{"--keypad", regular}, "not a named pipe"},
		{[]string{"--keypad", filepath.Join(missing, "k")}, "--keypad"},
		{[]string{"--tls", "--transport", "tcp"}, "choose one"},
		{[]string{"--cert-file", regular}, "go together"},
		{[]string{"--ca-file", missing}, "--ca-file"},
		{[]string{"--ca-file", regular}, "no PEM certificate"},
	}
	for _, tc := range tests {
		code, _, stderr := runCallCmd(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q in stderr:\n%s", tc.args, code, tc.want, stderr)
		}
	}
}

func TestCallBusy(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{Code: 486})
	code, _, stderr := runCallCmd(t, "--digits", callKeys, u.Target())
	if code != 1 || !strings.Contains(stderr, "call failed: 486 Busy Here") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestCallInfo types a card as SIP INFO, the keys read from stdin, and
// records the echo the UAS sends back.
func TestCallInfo(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	rec := filepath.Join(t.TempDir(), "rec.wav")
	old := callStdin
	callStdin = strings.NewReader(callKeys + "\r\n")
	defer func() { callStdin = old }()
	code, _, stderr := runCallCmd(t, "--dtmf", "info", "--digits", "-", "--press", "40ms", "--gap", "40ms",
		"--delay", "300ms", "--wait", "200ms", "--record", rec, "--to", u.Target())
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if got := u.InfoDigits(t, 40, 40); string(got) != callKeys {
		t.Errorf("UAS got %d INFO digits, equal to typed: %v", len(got), string(got) == callKeys)
	}
	if u.Byes() != 1 {
		t.Errorf("UAS got %d BYEs", u.Byes())
	}
	for _, step := range []string{"dialing", "answered", "waiting 300ms before typing", "typing 26 digits", "hung up"} {
		if !strings.Contains(stderr, step) {
			t.Errorf("stderr lacks %q:\n%s", step, stderr)
		}
	}
	b, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wav.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if a.Format.Rate != 8000 || a.Frames() < 8000 {
		t.Errorf("recording: %v, %d frames; want 8 kHz, at least 1 s of echo", a.Format, a.Frames())
	}
}

// TestCallRemoteHangup: with --hangup=false the caller waits for the far
// end's BYE and exits 0 with a note.
func TestCallRemoteHangup(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	// The BYE runs beside the command and must finish before the test
	// does: the UAS's cleanup would cancel its transaction, and a test
	// may not fail from a goroutine after it returned.
	byeErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		byeErr <- u.Dialog(t).Bye(ctx)
	}()
	code, _, stderr := runCallCmd(t, "--hangup=false", "--wait", "0s", u.Target())
	if err := <-byeErr; err != nil {
		t.Errorf("UAS BYE: %v", err)
	}
	if code != 0 || !strings.Contains(stderr, "far end ended the call") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
	if u.Byes() != 0 {
		t.Errorf("caller sent %d BYEs after the far end's", u.Byes())
	}
}

// TestCallNoAnswer: a peer that never answers ends in exit 1 at
// --answer-timeout, without waiting for SIP's 32 s transaction timeout.
func TestCallNoAnswer(t *testing.T) {
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	code, _, stderr := runCallCmd(t, "--answer-timeout", "300ms", "sip:pay@"+silent.LocalAddr().String())
	if code != 1 || !strings.Contains(stderr, "not answered within 300ms") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// TestCallKeypad: keys written to the --keypad pipe after the answer are
// typed, a bad line is reported by position and skipped, the --header
// reaches the far end, and the call ends --wait after the last keys.
func TestCallKeypad(t *testing.T) {
	u := callertest.NewUAS(t, callertest.UASOptions{})
	pipe := filepath.Join(t.TempDir(), "keypad")
	type result struct {
		code   int
		stderr string
	}
	res := make(chan result, 1)
	go func() {
		var out, errb syncBuffer
		code := run([]string{"call", "--keypad", pipe, "--header", "X-Interaction-ID: demo-7", "--dtmf", "info",
			"--press", "40ms", "--gap", "40ms", "--wait", "300ms", u.Target()}, &out, &errb)
		res <- result{code, out.String() + errb.String()}
	}()
	u.Dialog(t) // answered: the pipe exists and is open
	w, err := os.OpenFile(pipe, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(callPAN[:5] + "x\n\n" + callKeys + "\r\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var r result
	select {
	case r = <-res:
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end after --wait")
	}
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, callPAN) || callCVVRE.MatchString(r.stderr) || strings.Contains(r.stderr, callPAN[:5]+"x") {
		t.Errorf("printed card data:\n%s", r.stderr)
	}
	for _, want := range []string{"keypad line 1 not typed: key 6 of 6", "typing 26 digits", "no keys for 300ms", "hung up"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if got := u.InfoDigits(t, 40, 40); string(got) != callKeys {
		t.Errorf("UAS got %d INFO digits, equal to the good line: %v", len(got), string(got) == callKeys)
	}
	if got := u.InviteHeader("X-Interaction-ID"); len(got) != 1 || got[0] != "demo-7" {
		t.Errorf("INVITE X-Interaction-ID %q", got)
	}
	if fi, err := os.Lstat(pipe); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("keypad pipe: %v %v", fi, err)
	}
}

func TestKeyLines(t *testing.T) {
	long := strings.Repeat("1", 65)
	lines := make(chan []byte)
	go keyLines(strings.NewReader("12#\r\n\n"+long+"\n"+strings.Repeat("2", 64)+"\n*#\nno newline at EOF"), lines, make(chan struct{}))
	var got []string
	for l := range lines {
		if l == nil {
			got = append(got, "<too long>")
			continue
		}
		got = append(got, string(l))
	}
	want := []string{"12#", "<too long>", strings.Repeat("2", 64), "*#"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines %q, want %q", got, want)
	}
}

// TestCallSecureFlags: --tls dials the gateway's TLS port by default,
// --srtp offers SRTP.
func TestCallSecureFlags(t *testing.T) {
	cf, code, ok := parseCallFlags([]string{"--tls", "--srtp", "--digits", "1#"}, io.Discard, io.Discard)
	if !ok || code != 0 {
		t.Fatalf("exit %d", code)
	}
	if cf.opts.Transport != "tls" || !cf.opts.SRTP || cf.opts.Target != "sip:pay@127.0.0.1:5061;transport=tls" {
		t.Errorf("transport %q srtp %v target %q", cf.opts.Transport, cf.opts.SRTP, cf.opts.Target)
	}
	if err := cf.opts.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

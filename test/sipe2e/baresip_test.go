package sipe2e

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/sip/caller/callertest"
	"github.com/tonevault/tonevault/test/refdetect"
)

// baresipDigits is what the customer types: a repeated key checks that
// three presses of "1" stay three digits and are not merged.
const baresipDigits = "4111#"

// TestBaresip puts a real softphone on the customer side: baresip dials
// the carrier trunk, the agent is callertest's UAS behind the platform
// trunk. Debian's baresip (1.0.0) sends key presses only as RFC 4733
// telephone-events (it has no in-band or SIP INFO sending mode), so the
// in-band case types the digits into its microphone instead: a WAV of
// DTMF tones played by the aufile module, which baresip encodes to PCMU
// like any speech.
func TestBaresip(t *testing.T) {
	tests := []struct {
		name   string
		source dtmf.Source
	}{
		{name: "RFC 4733 key presses", source: dtmf.RFC4733},
		{name: "in-band tones from the microphone", source: dtmf.InBand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireBaresip(t)
			uas := callertest.NewUAS(t, callertest.UASOptions{})
			gw := startGateway(t, uasPort(t, uas))

			// The microphone outlasts the call: aufile ends the call at
			// the end of its file, and the test hangs up itself.
			var (
				mic   []int16
				tones time.Duration // how long the keyed part lasts
			)
			if tt.source == dtmf.InBand {
				mic, tones = toneMic(baresipDigits)
				// The input must carry the digits, or zero digits at
				// the agent would prove nothing.
				if got := refdetect.Digits(refdetect.Aggressive(mic)); got != baresipDigits {
					t.Fatalf("aggressive detector finds %q in the microphone input, want %q", got, baresipDigits)
				}
			} else {
				mic = voice(baresipMic)
			}
			b := startBaresip(t, mic)
			b.command(t, "/dial sip:pay@"+gw.g.Addr("carrier").String()+"\n")
			b.waitFor(t, "Call established")
			time.Sleep(300 * time.Millisecond)
			if tt.source == dtmf.RFC4733 {
				for i, k := range baresipDigits {
					b.command(t, string(k))
					// stdio releases a key on a timer (another key first
					// would make one long press); the pause lets one
					// event end before the next one starts.
					b.waitCount(t, "send DTMF digit end", i+1)
					time.Sleep(100 * time.Millisecond)
				}
				if got := strings.Count(b.output(), "send DTMF digit:"); got != len(baresipDigits) {
					t.Errorf("baresip sent %d key presses, want %d", got, len(baresipDigits))
				}
			} else {
				// The tones take this long once baresip plays them; on a
				// loaded machine its audio starts late, so wait for the
				// digits (for at most 5 s more; the microphone plays 10 s) before
				// hanging up.
				deadline := time.Now().Add(tones + 5*time.Second)
				for len(gw.digitString()) < len(baresipDigits) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
			}
			time.Sleep(300 * time.Millisecond)
			if strings.Contains(b.output(), "terminated") {
				t.Fatal("the call ended before the customer hung up")
			}
			b.command(t, "b")
			b.waitFor(t, "terminated")
			select {
			case <-uas.ByeReceived():
			case <-time.After(10 * time.Second):
				t.Error("the agent never got a BYE")
			}
			b.quit(t)

			c := waitEnded(t, gw, 1)[0]
			checkBaresipCall(t, gw, c)
			checkDigits(t, gw, c, tt.source)
			checkAgentClean(t, uas.Packets())
		})
	}
}

func checkBaresipCall(t *testing.T, gw *gateway, c sip.CallInfo) {
	t.Helper()
	if c.Outcome != "completed" || c.Answer.IsZero() {
		t.Errorf("call outcome %q, answered %v: want completed, answered", c.Outcome, !c.Answer.IsZero())
	}
	if c.Inbound != "carrier" || c.Caller != "customer" || c.Callee != "pay" {
		t.Errorf("inbound %q caller %q callee %q", c.Inbound, c.Caller, c.Callee)
	}
	if live := gw.reg.List(sip.Filter{State: sip.StateAnswered}); len(live) != 0 {
		t.Errorf("calls still answered: %+v", live)
	}
	if ev := gw.audit.events(); !slices.Contains(ev, audit.EventSIPCallStarted) || !slices.Contains(ev, audit.EventSIPCallEnded) {
		t.Errorf("audit events = %v", ev)
	}
	if n := len(gw.reg.List(sip.Filter{})); n != 1 {
		t.Errorf("registry holds %d calls, want 1", n)
	}
}

func checkDigits(t *testing.T, gw *gateway, c sip.CallInfo, want dtmf.Source) {
	t.Helper()
	if got := gw.digitString(); got != baresipDigits {
		t.Errorf("digits reported = %q, want %q (each once)", got, baresipDigits)
	}
	for _, d := range gw.digitsCopy() {
		if d.CallID != c.ID || d.Source != want {
			t.Errorf("digit %c on call %q from %v, want call %q from %v", d.Digit, d.CallID, d.Source, c.ID, want)
		}
	}
}

// checkAgentClean checks what the agent received: a valid stream of
// audio, no telephone-event, and no digit for any detector we have.
func checkAgentClean(t *testing.T, pkts []rtp.Packet) {
	t.Helper()
	checkAgentCleanRepeats(t, pkts, len(baresipDigits))
}

// checkAgentCleanRepeats is checkAgentClean allowing repeats packets
// with the timestamp of the one before.
func checkAgentCleanRepeats(t *testing.T, pkts []rtp.Packet, repeats int) {
	t.Helper()
	slices.SortStableFunc(pkts, func(a, b rtp.Packet) int { return int(int16(a.SequenceNumber - b.SequenceNumber)) })
	checkStream(t, pkts, repeats)
	var (
		pcm    []int16
		events int
		other  = map[uint8]int{}
	)
	for _, p := range pkts {
		switch p.PayloadType {
		case 0:
			buf := make([]int16, len(p.Payload))
			dtmf.DecodeG711(buf, p.Payload, dtmf.PCMU)
			pcm = append(pcm, buf...)
		case 101:
			events++
		default:
			other[p.PayloadType]++
		}
	}
	t.Logf("agent received %d RTP packets: %d ms of PCMU, %d telephone-event, other %v", len(pkts), len(pcm)/8, events, other)
	// A second of audio at least: the call lasts longer than that.
	if len(pcm) < dtmf.SampleRate {
		t.Errorf("agent received %d ms of audio, want at least 1000", len(pcm)/8)
	}
	if events != 0 || len(other) != 0 {
		t.Errorf("agent received %d telephone-event packets and other payload types %v", events, other)
	}
	if got := callertest.Detect(pcm); len(got) != 0 {
		t.Errorf("dtmf detector found %q in the agent's audio", got)
	}
	if hits := refdetect.Aggressive(pcm); len(hits) != 0 {
		t.Errorf("aggressive reference detector found %s in the agent's audio", refdetect.Digits(hits))
	}
	detectors := []struct {
		tool string
		run  func([]int16) ([]refdetect.Hit, error)
	}{
		{refdetect.ToolSpanDSP, refdetect.SpanDSP},
		{refdetect.ToolMultimon, refdetect.Multimon},
	}
	for _, d := range detectors {
		if err := refdetect.Available(d.tool); err != nil {
			if os.Getenv(envRequireTools) == "1" {
				t.Errorf("%v; required because %s=1", err, envRequireTools)
			} else {
				t.Logf("not run: %v", err)
			}
			continue
		}
		hits, err := d.run(pcm)
		if err != nil {
			t.Errorf("%s: %v", d.tool, err)
			continue
		}
		if len(hits) != 0 {
			t.Errorf("%s found %s in the agent's audio", d.tool, refdetect.Digits(hits))
		} else {
			t.Logf("%s: no digit in the agent's audio", d.tool)
		}
	}
}

// checkStream checks DESIGN.md invariant 1's "valid RTP" on pkts, in
// sequence order: one SSRC, no sequence gap (loopback loses nothing at 50
// packets a second), timestamps that never go back.
func checkStream(t *testing.T, pkts []rtp.Packet, repeats int) {
	t.Helper()
	same := 0 // packets with the timestamp of the one before
	for i := 1; i < len(pkts); i++ {
		p, q := pkts[i-1], pkts[i]
		if q.SSRC != p.SSRC {
			t.Errorf("SSRC changed from %08x to %08x at sequence %d", p.SSRC, q.SSRC, q.SequenceNumber)
		}
		if q.SequenceNumber != p.SequenceNumber+1 {
			t.Errorf("sequence jumps from %d to %d", p.SequenceNumber, q.SequenceNumber)
		}
		switch d := int32(q.Timestamp - p.Timestamp); {
		case d < 0:
			t.Errorf("timestamp goes back from %d to %d at sequence %d", p.Timestamp, q.Timestamp, q.SequenceNumber)
		case d == 0:
			same++
		}
	}
	// baresip 1.0.0 keeps sending audio while it sends telephone-events.
	// The relay replaces an event's first packet (it cannot know yet that
	// audio goes on) and drops the rest, so at most one slot per press is
	// doubled; replacing them all doubled the audio of every key press.
	t.Logf("%d agent packets repeat the timestamp of the one before", same)
	if same > repeats {
		t.Errorf("%d packets repeat a timestamp: more than %d", same, repeats)
	}
}

// requireBaresip skips (or fails, with TONEVAULT_REQUIRE_TOOLS=1) when
// baresip is not installed.
func requireBaresip(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("baresip")
	if err == nil {
		return p
	}
	msg := "baresip not found (Debian package baresip: scripts/install-deps.sh sip)"
	if os.Getenv(envRequireTools) == "1" {
		t.Fatalf("%s; required because %s=1", msg, envRequireTools)
	}
	t.Skipf("skipping: %s; set %s=1 to make this a failure", msg, envRequireTools)
	return ""
}

// uasPort is the SIP port of the UAS, for the gateway's platform target.
func uasPort(t *testing.T, u *callertest.UAS) int {
	t.Helper()
	target := u.Target()
	p, err := strconv.Atoi(target[strings.LastIndexByte(target, ':')+1:])
	if err != nil {
		t.Fatalf("UAS target %q: %v", target, err)
	}
	return p
}

// baresip is one baresip process driven through its stdio console.
type baresip struct {
	cmd   *exec.Cmd
	stdin interface {
		Write([]byte) (int, error)
		Close() error
	}
	out     testutil.SyncBuffer
	exited  chan struct{} // closed when the process has ended
	exitErr error         // its Wait error, once exited is closed
}

func (b *baresip) Write(p []byte) (int, error) { return b.out.Write(p) }

func (b *baresip) output() string { return b.out.String() }

// baresipConfig is a headless configuration: SIP and media on loopback
// only, the microphone a WAV file, what it hears and its ring tones
// thrown away through aubridge (Debian's aufile has no player).
const baresipConfig = `poll_method		epoll
sip_listen		127.0.0.1:%d
net_interface		127.0.0.1
rtp_ports		%d-%d
audio_path		/usr/share/baresip
audio_source		aufile,%s
audio_player		aubridge,heard
audio_alert		aubridge,alert
module_path		/usr/lib/baresip/modules
module			stdio.so
module			g711.so
module			aufile.so
module			aubridge.so
module_tmp		account.so
module_app		menu.so
`

// startBaresip writes a config directory with mic as the microphone and
// starts baresip on it.
func startBaresip(t *testing.T, mic []int16) *baresip {
	t.Helper()
	return startBaresipWith(t, mic, baresipOpts{})
}

// baresipOpts add to the headless configuration.
type baresipOpts struct {
	config  string // more config lines (sip_certificate, module srtp.so...)
	account string // account parameters after the address, e.g. ";mediaenc=srtp-mand"
	// transport makes the account's address ;transport=tls (or tcp).
	transport string
	// rtpBase, when not 0, is the first of 8 RTP ports (a capture filter
	// needs them known).
	rtpBase int
	// sipPort, when not 0, is the SIP port (TLS listens on the next one).
	sipPort int
	// user is the account's user part (default customer).
	user string
}

// startBaresipWith is startBaresip with o added to its configuration.
func startBaresipWith(t *testing.T, mic []int16, o baresipOpts) *baresip {
	t.Helper()
	bin := requireBaresip(t)
	dir := t.TempDir()
	wav := filepath.Join(dir, "mic.wav")
	if err := os.WriteFile(wav, wavBytes(mic), 0o644); err != nil {
		t.Fatal(err)
	}
	rtpBase := o.rtpBase
	if rtpBase == 0 {
		rtpBase = freePorts(t, 8)
	}
	sipPort := o.sipPort
	if sipPort == 0 {
		sipPort = freePorts(t, 1)
	}
	user := o.user
	if user == "" {
		user = "customer"
	}
	addr := "<sip:" + user + "@127.0.0.1"
	if o.transport != "" {
		addr += ";transport=" + o.transport
	}
	files := map[string]string{
		"config":   fmt.Sprintf(baresipConfig, sipPort, rtpBase, rtpBase+7, wav) + o.config,
		"accounts": addr + ">;regint=0;audio_codecs=PCMU" + o.account + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b := &baresip{exited: make(chan struct{})}
	b.cmd = exec.Command(bin, "-f", dir)
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = b, b
	in, err := b.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.stdin = in
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.exitErr = b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() {
		select {
		case <-b.exited:
		default:
			b.cmd.Process.Kill()
			<-b.exited
		}
		if t.Failed() {
			t.Logf("--- baresip output (tail) ---\n%s", tail(b.output(), 6000))
		}
	})
	b.waitFor(t, "baresip is ready")
	return b
}

func (b *baresip) command(t *testing.T, s string) {
	t.Helper()
	if _, err := b.stdin.Write([]byte(s)); err != nil {
		t.Fatalf("baresip stdin: %v", err)
	}
}

// waitFor waits until baresip has printed s.
func (b *baresip) waitFor(t *testing.T, s string) { t.Helper(); b.waitCount(t, s, 1) }

// waitCount waits until baresip has printed s n times.
func (b *baresip) waitCount(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(b.output(), s) < n {
		select {
		case <-b.exited:
			t.Fatalf("baresip ended (%v) before printing %q %d times\n--- output (tail) ---\n%s", b.exitErr, s, n, tail(b.output(), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip did not print %q %d times\n--- output (tail) ---\n%s", s, n, tail(b.output(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// quit asks baresip to quit and checks that it exits cleanly.
func (b *baresip) quit(t *testing.T) {
	t.Helper()
	b.command(t, "q")
	select {
	case <-b.exited:
		if b.exitErr != nil {
			t.Errorf("baresip exited with %v", b.exitErr)
		}
	case <-time.After(10 * time.Second):
		t.Error("baresip did not quit")
	}
}

// baresipMic is how long the microphone plays, longer than each call.
const baresipMic = 10 * time.Second

// voice is a stand-in for speech: a 440 Hz tone, far from every DTMF
// frequency, at -20 dBm0.
func voice(d time.Duration) []int16 {
	n := int(d * dtmf.SampleRate / time.Second)
	pcm := make([]int16, n)
	addVoice(pcm, 0)
	return pcm
}

func addVoice(pcm []int16, from int) {
	a := dtmf.PeakForDBm0(-20)
	for i := range pcm {
		pcm[i] += int16(a * math.Sin(2*math.Pi*440*float64(from+i)/dtmf.SampleRate))
	}
}

// toneMic is a microphone signal with the digits keyed in-band: voice,
// then each digit as 100 ms of tone at -10 dBm0 per frequency and 150 ms
// of silence, then voice again up to baresipMic. It also returns when
// the last digit's pause ends.
func toneMic(digits string) ([]int16, time.Duration) {
	const (
		lead = 600 * dtmf.SampleRate / 1000
		tone = 100 * dtmf.SampleRate / 1000
		gap  = 150 * dtmf.SampleRate / 1000
	)
	pcm := make([]int16, baresipMic*dtmf.SampleRate/time.Second)
	addVoice(pcm[:lead], 0)
	at := lead
	for _, d := range []byte(digits) {
		dtmf.AddTone(pcm[at:at+tone], dtmf.SampleRate, int64(at), dtmf.Digit(d), -10, -10)
		at += tone + gap
	}
	addVoice(pcm[at:], at)
	return pcm, time.Duration(at) * time.Second / dtmf.SampleRate
}

// wavBytes is pcm as a 16-bit mono 8 kHz WAV file.
func wavBytes(pcm []int16) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	size := uint32(2 * len(pcm))
	b.WriteString("RIFF")
	binary.Write(&b, le, 36+size)
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(dtmf.SampleRate), uint32(2 * dtmf.SampleRate), uint16(2), uint16(16)} {
		binary.Write(&b, le, v) // a bytes.Buffer does not fail
	}
	b.WriteString("data")
	binary.Write(&b, le, size)
	binary.Write(&b, le, pcm)
	return b.Bytes()
}

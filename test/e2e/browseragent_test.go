package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/dtmf/wav"
)

// The browser agent tests put a real Chromium on the agent side (the
// agent page, its fake microphone a WAV file) and a real softphone,
// baresip, on the customer's, with the whole gateway between them: SIP
// and RTP on the carrier trunk, WebRTC (pion) to the browser.

const (
	agentVoiceHz    = 1000.0 // the agent's microphone: far from every DTMF frequency
	customerVoiceHz = 440.0  // the customer's "speech"
	agentPool       = "e2e"
)

// browserAgentStack is a stack whose platform target is a pool of
// browser agents.
func browserAgentStack(t *testing.T, connectTimeout string) *stack {
	return newStack(t, stackOptions{
		platform: "agents:" + agentPool,
		extra: fmt.Sprintf("agents:\n  pools:\n    %s:\n      ring_timeout: 90s\nwebrtc:\n  connect_timeout: %s\n  disconnect_timeout: 3s\n",
			agentPool, connectTimeout),
	})
}

// mintAgentToken is the CRM signing agent in.
func (s *stack) mintAgentToken(t *testing.T, agent string) string {
	t.Helper()
	r := s.api.do(t, "POST", "/v1/agent-tokens", fmt.Sprintf(`{"agent_id":%q,"pools":[%q]}`, agent, agentPool), nil)
	var tok struct {
		Token string `json:"token"`
	}
	if r.code != 201 || json.Unmarshal(r.body, &tok) != nil || tok.Token == "" {
		t.Fatalf("agent token: %d %s", r.code, r.body)
	}
	return tok.Token
}

// tone is d of a sine at hz, level dBm0, at rate.
func tone(d time.Duration, rate int, hz, dbm0 float64) []int16 {
	n := int(d * time.Duration(rate) / time.Second)
	a := dtmf.PeakForDBm0(dbm0)
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(a * math.Sin(2*math.Pi*hz*float64(i)/float64(rate)))
	}
	return out
}

// writeWAV writes 16-bit mono PCM at rate.
func writeWAV(t *testing.T, path string, pcm []int16, rate int) {
	t.Helper()
	var b bytes.Buffer
	if err := wav.Write(&b, wav.NewFormat(wav.PCM, rate, 1), [][]int16{pcm}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// keyed is the customer typing digits in-band into its microphone: a
// little voice, then each digit as 100 ms of tone at -10 dBm0 per
// frequency and 150 ms of quiet, then voice for long after the call.
func keyed(digits string) []int16 {
	const rate = dtmf.SampleRate
	pcm := tone(500*time.Millisecond, rate, customerVoiceHz, -20)
	for _, d := range []byte(digits) {
		key := make([]int16, rate/10)
		dtmf.AddTone(key, rate, int64(len(pcm)), dtmf.Digit(d), -10, -10)
		pcm = append(pcm, key...)
		pcm = append(pcm, make([]int16, rate*15/100)...)
	}
	return append(pcm, tone(3*time.Minute, rate, customerVoiceHz, -20)...)
}

// power is the share of pcm's energy within ±20 Hz of hz (Goertzel over
// 100 ms blocks, summed), 0 to 1.
func power(pcm []int16, rate int, hz float64) float64 {
	const block = 800
	var at, total float64
	for i := 0; i+block <= len(pcm); i += block {
		var s1, s2, e float64
		k := 2 * math.Cos(2*math.Pi*hz/float64(rate))
		for _, v := range pcm[i : i+block] {
			x := float64(v)
			e += x * x
			s1, s2 = x+k*s1-s2, s1
		}
		at += (s1*s1 + s2*s2 - k*s1*s2) * 2 / block
		total += e
	}
	if total == 0 {
		return 0
	}
	return at / total
}

// customer is baresip on the carrier side: its microphone a WAV file
// that can be switched mid-call, what it hears recorded by sndfile.
type customer struct {
	cmd    *exec.Cmd
	dir    string
	mu     sync.Mutex
	out    bytes.Buffer
	stdin  interface{ Write([]byte) (int, error) }
	exited chan struct{}
}

func (c *customer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *customer) output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

func requireBaresip(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("baresip")
	if err != nil {
		msg := "baresip not found (scripts/install-deps.sh sip)"
		if os.Getenv("TONEVAULT_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg)
	}
	return p
}

// The customer's baresip never goes into the recorder: it is the
// customer's own phone, and prints the keys it sends.
func startCustomer(t *testing.T, bin string) *customer {
	t.Helper()
	dir := t.TempDir()
	writeWAV(t, filepath.Join(dir, "voice.wav"), tone(3*time.Minute, dtmf.SampleRate, customerVoiceHz, -20), dtmf.SampleRate)
	sipPort, rtp := freeUDPPort(t), freeUDPPort(t)
	config := fmt.Sprintf(`poll_method		epoll
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
module			sndfile.so
snd_path		%s
module_tmp		account.so
module_app		menu.so
`, sipPort, rtp, rtp+1, filepath.Join(dir, "voice.wav"), dir)
	for name, body := range map[string]string{"config": config, "accounts": "<sip:customer@127.0.0.1>;regint=0;audio_codecs=PCMU\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &customer{dir: dir, exited: make(chan struct{})}
	c.cmd = exec.Command(bin, "-f", dir)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = c, c
	in, err := c.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin = in
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		select {
		case <-c.exited:
		default:
			c.cmd.Process.Kill()
			<-c.exited
		}
	})
	c.waitFor(t, "baresip is ready", 1)
	return c
}

func (c *customer) command(t *testing.T, s string) {
	t.Helper()
	if _, err := c.stdin.Write([]byte(s)); err != nil {
		t.Fatalf("baresip: %v", err)
	}
}

func (c *customer) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(c.output(), s) < n {
		select {
		case <-c.exited:
			t.Fatalf("baresip ended before printing %q", s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baresip did not print %q %d times", s, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keys sends keys as RFC 4733 telephone-events, one press each.
func (c *customer) keys(t *testing.T, keys string) {
	t.Helper()
	for _, k := range keys {
		n := strings.Count(c.output(), "send DTMF digit end")
		c.command(t, string(k))
		c.waitFor(t, "send DTMF digit end", n+1)
		time.Sleep(100 * time.Millisecond)
	}
}

// heard is what the customer heard (sndfile's decoded dump), at 8 kHz.
func (c *customer) heard(t *testing.T) []int16 {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(c.dir, "dump-*dec*.wav"))
	if len(files) == 0 {
		entries, _ := os.ReadDir(c.dir)
		t.Fatalf("no recording of what the customer heard in %s (%v)", c.dir, entries)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	a, err := wav.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := wav.To8k(a.Decode()[0], a.Format.Rate)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// udpFree reports whether port is free on loopback for UDP.
func udpFree(port int) bool {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		p := 30000 + int(time.Now().UnixNano()%20000)&^1
		if ok := udpFree(p) && udpFree(p+1); ok {
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// browser is headless Chromium with a fake microphone.
type browser struct {
	ctx    context.Context
	cancel func()
	mu     sync.Mutex
	errs   []string
}

func startBrowser(t *testing.T, s *stack, path string) *browser {
	t.Helper()
	mic := filepath.Join(t.TempDir(), "agent-mic.wav")
	writeWAV(t, mic, tone(20*time.Second, 48000, agentVoiceHz, -16), 48000)
	profile, err := os.MkdirTemp("", "tonevault-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", mic),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1100, 800),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 4*time.Minute)
	b := &browser{ctx: ctx, cancel: func() { cancelT(); cancelC(); cancelA() }}
	t.Cleanup(b.cancel)
	console := s.rec.writer("browser console")
	chromedp.ListenTarget(ctx, func(ev any) {
		b.mu.Lock()
		defer b.mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			b.errs = append(b.errs, e.ExceptionDetails.Error())
			fmt.Fprintln(console, e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				fmt.Fprintln(console, e.Type, string(a.Value), a.Description)
				if e.Type == runtime.APITypeError {
					b.errs = append(b.errs, string(a.Value)+a.Description)
				}
			}
		}
	})
	return b
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	if err := chromedp.Run(b.ctx, actions...); err != nil {
		screenshot(t, b.ctx, "e2e-agent-failed.png")
		b.mu.Lock()
		defer b.mu.Unlock()
		t.Fatalf("%s: %v (JS errors: %v)", what, err, b.errs)
	}
}

func (b *browser) poll(t *testing.T, what, js string, timeout time.Duration) {
	t.Helper()
	b.run(t, what, chromedp.Poll(js, nil, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
}

func (b *browser) eval(t *testing.T, what, js string, out any) {
	t.Helper()
	b.run(t, what, chromedp.Evaluate(js, out, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
}

// startRecording records the remote track the page plays, as the agent
// hears it, at 8 kHz (WebAudio): the test's own script, run in the page.
const startRecording = `(() => {
  const stream = document.getElementById("remote").srcObject;
  if (!stream) return "no remote stream";
  const ctx = new AudioContext({ sampleRate: 8000 });
  const src = ctx.createMediaStreamSource(stream);
  const node = ctx.createScriptProcessor(4096, 1, 1);
  window.__heard = [];
  node.onaudioprocess = (e) => { window.__heard.push(Float32Array.from(e.inputBuffer.getChannelData(0))); };
  const mute = ctx.createGain(); mute.gain.value = 0;
  src.connect(node); node.connect(mute); mute.connect(ctx.destination);
  ctx.resume();
  window.__rec = { ctx, node };
  return "ok";
})()`

// takeRecording returns what was recorded as 16-bit PCM in base64.
const takeRecording = `(() => {
  const chunks = window.__heard || [];
  let n = 0; for (const c of chunks) n += c.length;
  const pcm = new Int16Array(n);
  let i = 0;
  for (const c of chunks) for (const v of c) pcm[i++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
  const bytes = new Uint8Array(pcm.buffer);
  let bin = "";
  for (let j = 0; j < bytes.length; j += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(j, j + 0x8000));
  return btoa(bin);
})()`

func decodePCM(t *testing.T, b64 string) []int16 {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// widget evaluates js in the payment widget's frame (same origin).
func widgetJS(js string) string {
	return `(() => { const d = document.getElementById("widget").contentDocument; if (!d) return false; return (` + js + `); })()`
}

func widgetField(name, part string) string {
	return fmt.Sprintf(`(d.querySelector('[data-field="%s"] .%s') || {}).textContent`, name, part)
}

// TestBrowserAgentTakesPayment: a customer on baresip calls; the call
// rings the agent page in Chromium, the agent answers (WebRTC), talks,
// and takes the payment in the widget beside the softphone while the
// customer types the card number in-band and the expiry and security
// code as RFC 4733 events. What the page received (recorded in the page
// from its remote track) holds no digit for any detector, and holds the
// customer's voice; the customer hears the agent's microphone; the
// payment is approved.
func TestBrowserAgentTakesPayment(t *testing.T) {
	chromium := requireChromium(t)
	bare := requireBaresip(t)
	c := visaApproved
	s := browserAgentStack(t, "10s")
	tok := s.mintAgentToken(t, "agent-7")
	b := startBrowser(t, s, chromium)
	b.run(t, "open the agent page",
		chromedp.Navigate(s.api.base+"/agent/?processing=off&token="+tok),
		chromedp.WaitVisible("#phone", chromedp.ByID))
	b.poll(t, "signed in", `document.getElementById("presence").textContent === "Available"`, 20*time.Second)

	cust := startCustomer(t, bare)
	cust.command(t, "/dial sip:pay@"+s.gw.carrier+"\n")
	b.poll(t, "the call rings the page", `!document.getElementById("incoming").hidden`, 20*time.Second)
	var callerShown string
	b.run(t, "read the caller", chromedp.Text("#in-caller", &callerShown, chromedp.ByID))
	if callerShown != "customer" {
		t.Errorf("the page shows the caller as %q, want customer", callerShown)
	}
	b.run(t, "answer", chromedp.Click("#answer", chromedp.ByID))
	b.poll(t, "connected", `document.getElementById("call-state").textContent === "Connected"`, 30*time.Second)
	cust.waitFor(t, "Call established", 1)
	var ok string
	b.eval(t, "record what the agent hears", startRecording, &ok)
	if ok != "ok" {
		t.Fatalf("recording: %s", ok)
	}
	// A few seconds of conversation before the payment.
	time.Sleep(3 * time.Second)

	b.poll(t, "the widget opens beside the phone", widgetJS(`!!d.getElementById("amount")`), 20*time.Second)
	b.eval(t, "take payment", widgetJS(`(d.getElementById("amount").value = "19.99", d.getElementById("take").click(), true)`), new(bool))
	b.poll(t, "payment started", widgetJS(`!d.getElementById("session").hidden`), 20*time.Second)

	// The card number in-band, from the customer's microphone.
	keyedWAV := filepath.Join(cust.dir, "keyed.wav")
	writeWAV(t, keyedWAV, keyed(c.pan+"#"), dtmf.SampleRate)
	cust.command(t, "/ausrc aufile,"+keyedWAV+"\n")
	b.poll(t, "card number valid", widgetJS(widgetField("card_number", "tick")+` === "✓"`), 30*time.Second)
	// Expiry and security code as RFC 4733 key presses.
	cust.keys(t, c.expiry+"#")
	b.poll(t, "expiry valid", widgetJS(widgetField("expiry", "tick")+` === "✓"`), 30*time.Second)
	cust.keys(t, c.cvv+"#")
	b.poll(t, "ready to submit", widgetJS(`!d.getElementById("submit").disabled`), 30*time.Second)
	b.eval(t, "submit", widgetJS(`(d.getElementById("submit").click(), true)`), new(bool))
	b.poll(t, "result", widgetJS(`d.getElementById("result-title").textContent !== ""`), 60*time.Second)
	var title, html string
	b.eval(t, "read the result", widgetJS(`d.getElementById("result-title").textContent`), &title)
	b.run(t, "page", chromedp.OuterHTML("html", &html, chromedp.ByQuery))
	s.rec.add("agent page", []byte(html))
	screenshot(t, b.ctx, "e2e-agent-page.png")
	if title != "Payment approved" {
		t.Errorf("widget result %q, want Payment approved", title)
	}
	time.Sleep(2 * time.Second) // more of the agent's voice for the customer

	cust.command(t, "b")
	cust.waitFor(t, "terminated", 1)
	b.poll(t, "the page hears the call ended", `document.getElementById("active").hidden`, 20*time.Second)
	var rec string
	b.eval(t, "take the recording", takeRecording, &rec)
	heardByAgent := decodePCM(t, rec)
	heardByCustomer := cust.heard(t)
	cust.command(t, "q")
	t.Logf("the agent page recorded %.1f s, the customer %.1f s", float64(len(heardByAgent))/8000, float64(len(heardByCustomer))/8000)

	// No digit reached the agent: every detector, each shown first to
	// find one planted in the same audio.
	digitsIn(t, heardByAgent, func(t *testing.T, name string, n int) {
		if n != 0 {
			t.Errorf("%s found %d digits in what the agent page received", name, n)
		}
	})
	// The customer's voice reached the agent, the agent's the customer:
	// each check is shown to fail on the other direction's audio.
	t.Logf("share of %v Hz (customer's voice): %.2f of what the agent heard, %.2f of what the customer heard; of %v Hz (agent's): %.2f and %.2f",
		customerVoiceHz, power(heardByAgent, 8000, customerVoiceHz), power(heardByCustomer, 8000, customerVoiceHz),
		agentVoiceHz, power(heardByAgent, 8000, agentVoiceHz), power(heardByCustomer, 8000, agentVoiceHz))
	if p, ctl := power(heardByAgent, 8000, customerVoiceHz), power(heardByCustomer, 8000, customerVoiceHz); p < 0.2 || ctl > 0.05 {
		t.Errorf("customer's voice (%v Hz): %.2f of what the agent heard (want > 0.2), %.2f of what the customer heard (want < 0.05)", customerVoiceHz, p, ctl)
	}
	if p, ctl := power(heardByCustomer, 8000, agentVoiceHz), power(heardByAgent, 8000, agentVoiceHz); p < 0.2 || ctl > 0.05 {
		t.Errorf("agent's voice (%v Hz): %.2f of what the customer heard (want > 0.2), %.2f of what the agent heard (want < 0.05)", agentVoiceHz, p, ctl)
	}

	callID := s.api.answeredCall(t)
	payID := paymentOfCall(t, s.gw.trail, callID)
	v := s.api.payment(t, payID)
	if v.State != "approved" || v.Result == nil {
		t.Fatalf("payment %s: %s", payID, v.State)
	}
	checkToken(t, v.Result.Token, c)
	recs := s.finish(t)
	requireCallEvents(t, recs, callID, audit.EventAgentCallAnswered, audit.EventAgentCallEnded, audit.EventSIPCallEnded)
	requireEvents(t, paymentEvents(recs, payID), audit.EventAuthorizationResult, audit.EventSessionEnded)
	b.mu.Lock()
	if len(b.errs) > 0 {
		t.Errorf("JavaScript errors: %v", b.errs)
	}
	b.mu.Unlock()
	assertNoLeaks(t, s.rec, c, v.Result.Token)
}

// requireCallEvents wants each event among callID's records.
func requireCallEvents(t *testing.T, recs []audit.Record, callID string, want ...audit.Event) {
	t.Helper()
	var got []audit.Event
	for _, r := range recs {
		if r.CallID == callID {
			got = append(got, r.Event)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("audit trail for call %s lacks %s; has %v", callID, w, got)
		}
	}
}

// callRecord is the first record of event for callID.
func callRecord(recs []audit.Record, callID string, event audit.Event, reason audit.Reason) bool {
	return slices.ContainsFunc(recs, func(r audit.Record) bool {
		return r.CallID == callID && r.Event == event && r.Reason == reason
	})
}

// TestBrowserAgentFailures: a bad offer from the page, an offer with no
// candidates (ICE never connects) and the agent closing the tab mid-call
// each end cleanly, with their audit record: the first two leave the
// call ringing, the last hangs the caller up.
func TestBrowserAgentFailures(t *testing.T) {
	chromium := requireChromium(t)
	bare := requireBaresip(t)
	s := browserAgentStack(t, "3s")
	tok := s.mintAgentToken(t, "agent-9")
	b := startBrowser(t, s, chromium)
	b.run(t, "open the agent page",
		chromedp.Navigate(s.api.base+"/agent/?processing=off&token="+tok),
		chromedp.WaitVisible("#phone", chromedp.ByID))
	b.poll(t, "signed in", `document.getElementById("presence").textContent === "Available"`, 20*time.Second)
	cust := startCustomer(t, bare)
	cust.command(t, "/dial sip:pay@"+s.gw.carrier+"\n")
	b.poll(t, "ringing", `!document.getElementById("incoming").hidden`, 20*time.Second)
	var callID string
	b.eval(t, "call id", `document.getElementById("answer").dataset.call`, &callID)

	// A bad offer, posted as the page would post its own.
	var status float64
	b.eval(t, "post a bad offer", fmt.Sprintf(`fetch("../v1/agent/calls/%s/answer", {method: "POST", headers: {"Authorization": "Bearer " + sessionStorage.getItem("tonevault.agent-token"), "Content-Type": "application/sdp"}, body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"}).then(r => r.status)`, callID), &status)
	if status != 400 {
		t.Errorf("bad offer: %v, want 400", status)
	}
	// An offer without candidates: the page's own answer, its candidates
	// cut on the way out, and the gateway's cut from the answer on the
	// way back (a network with no path either way: a browser that knows
	// the gateway's address would find it by itself, as ICE allows).
	b.eval(t, "strip candidates", `(() => {
	  const f = window.fetch;
	  const cut = (sdp) => sdp.split("\r\n").filter(l => !l.startsWith("a=candidate")).join("\r\n");
	  window.fetch = async (u, o) => {
	    if (!(o && o.method === "POST" && String(u).endsWith("/answer"))) return f(u, o);
	    window.fetch = f;
	    const r = await f(u, Object.assign({}, o, {body: cut(o.body)}));
	    if (!r.ok) return r;
	    return new Response(cut(await r.text()), {status: r.status, headers: r.headers});
	  };
	  return true;
	})()`, new(bool))
	b.run(t, "answer without candidates", chromedp.Click("#answer", chromedp.ByID))
	b.poll(t, "the page says ICE failed", `document.getElementById("error").textContent.includes("ICE failed")`, 30*time.Second)
	b.poll(t, "still ringing", `!document.getElementById("incoming").hidden`, 10*time.Second)
	if strings.Contains(cust.output(), "terminated") {
		t.Fatal("the failed answers ended the call")
	}

	// Now a good answer, then the agent closes the tab.
	b.run(t, "answer", chromedp.Click("#answer", chromedp.ByID))
	b.poll(t, "connected", `document.getElementById("call-state").textContent === "Connected"`, 30*time.Second)
	cust.waitFor(t, "Call established", 1)
	time.Sleep(time.Second)
	b.run(t, "close the tab", page.Close())
	cust.waitFor(t, "terminated", 1) // the caller got BYE
	cust.command(t, "q")
	recs := s.finish(t)
	for _, want := range []struct {
		event  audit.Event
		reason audit.Reason
	}{
		{audit.EventAgentAnswerFailed, audit.ReasonBadSDP},
		{audit.EventAgentAnswerFailed, audit.ReasonICEFailed},
		{audit.EventAgentCallAnswered, ""},
		{audit.EventAgentCallEnded, audit.ReasonAgentGone},
		{audit.EventSIPCallEnded, audit.ReasonAgentGone},
	} {
		if !callRecord(recs, callID, want.event, want.reason) {
			t.Errorf("no %s (%s) record for the call", want.event, want.reason)
		}
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/sip/caller"
)

// requireChromium skips without Debian's chromium, or fails when
// TONEVAULT_REQUIRE_TOOLS=1.
func requireChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TONEVAULT_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		msg := fmt.Sprintf("chromium not found at %s (install: scripts/install-deps.sh browser)", path)
		if os.Getenv("TONEVAULT_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip("skipping: " + msg + "; set TONEVAULT_REQUIRE_TOOLS=1 to make this a failure")
	}
	return path
}

// TestWidgetDuringCall drives the agent widget in headless Chromium
// during a real call: the agent takes the payment in the widget, the
// customer types in-band, the fields fill live, the agent submits in the
// widget and sees the approval.
func TestWidgetDuringCall(t *testing.T) {
	t.Parallel()
	browser := requireChromium(t)
	c := visaApproved
	s := newStack(t, stackOptions{})
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	r := s.api.do(t, "POST", "/v1/widget-tokens", fmt.Sprintf(`{"call_id":%q}`, callID), nil)
	var tok struct {
		Token string `json:"token"`
	}
	if r.code != 201 || json.Unmarshal(r.body, &tok) != nil || tok.Token == "" {
		t.Fatalf("widget token: %d %s", r.code, r.body)
	}

	// Not t.TempDir: Chromium's helpers may still write to the profile
	// for a moment after the browser exits, which fails its cleanup.
	profile, err := os.MkdirTemp("", "tonevault-e2e-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(browser),
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
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(360, 760),
	)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancelT := context.WithTimeout(ctx, 120*time.Second)
	defer cancelT()
	console := s.rec.writer("browser console")
	var (
		jsMu     sync.Mutex // the listener runs on chromedp's goroutine
		jsErrors []string
	)
	errorsSoFar := func() []string {
		jsMu.Lock()
		defer jsMu.Unlock()
		return slices.Clone(jsErrors)
	}
	chromedp.ListenTarget(ctx, func(ev any) {
		jsMu.Lock()
		defer jsMu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			jsErrors = append(jsErrors, e.ExceptionDetails.Error())
			fmt.Fprintln(console, e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			for _, a := range e.Args {
				fmt.Fprintln(console, e.Type, string(a.Value), a.Description)
				if e.Type == runtime.APITypeError {
					jsErrors = append(jsErrors, string(a.Value)+a.Description)
				}
			}
		}
	})
	step := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			screenshot(t, ctx, "e2e-widget-failed.png")
			t.Fatalf("%s: %v (JS errors: %v)", what, err, errorsSoFar())
		}
	}
	poll := func(what, js string) {
		t.Helper()
		step(what, chromedp.Poll(js, nil, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	}
	field := func(name, part string) string {
		return fmt.Sprintf(`document.querySelector('[data-field="%s"] .%s').textContent`, name, part)
	}
	press := func(keys string) { typeCard(t, call, []byte(keys), caller.InBand) }

	step("open the widget",
		chromedp.EmulateViewport(360, 760),
		chromedp.Navigate(s.api.base+"/widget/?call="+callID+"&token="+tok.Token),
		chromedp.WaitVisible("#amount", chromedp.ByID),
	)
	step("take payment",
		chromedp.SetValue("#amount", "19.99", chromedp.ByID),
		chromedp.Click("#take", chromedp.ByID),
		chromedp.WaitVisible("#session", chromedp.ByID),
	)
	press(c.pan[:6])
	poll("six dots", field("card_number", "masked")+` === "••••••"`)
	press(c.pan[6:] + "#")
	poll("card number valid", field("card_number", "tick")+` === "✓"`)
	var masked string
	step("read the masked card number", chromedp.Text(`[data-field="card_number"] .masked`, &masked, chromedp.ByQuery))
	if !strings.HasPrefix(masked, c.pan[:6]) || !strings.HasSuffix(masked, c.pan[12:]) || len([]rune(masked)) != len(c.pan) {
		t.Errorf("the widget shows the card number as %q, want BIN, mask, last four", masked)
	}
	press(c.expiry)
	poll("expiry valid", field("expiry", "tick")+` === "✓"`)
	press(c.cvv)
	poll("ready to submit", `!document.getElementById("submit").disabled`)
	screenshot(t, ctx, "e2e-widget-complete.png")
	var html string
	step("submit",
		chromedp.Click("#submit", chromedp.ByID),
		chromedp.WaitVisible("#result", chromedp.ByID),
	)
	poll("result shown", `document.getElementById("result-title").textContent !== ""`)
	var title, detail string
	step("read the result",
		chromedp.Text("#result-title", &title, chromedp.ByID),
		chromedp.Text("#result-detail", &detail, chromedp.ByID),
		chromedp.OuterHTML("html", &html, chromedp.ByQuery),
	)
	screenshot(t, ctx, "e2e-widget.png")
	s.rec.add("widget page", []byte(html))
	s.rec.add("widget result", []byte(title+"\n"+detail))
	if title != "Payment approved" {
		t.Errorf("widget result %q (%q), want Payment approved", title, detail)
	}
	if e := errorsSoFar(); len(e) > 0 {
		t.Errorf("JavaScript errors (CSP violations show here too): %v", e)
	}
	if st := s.sim.Stats(); st.Approved != 1 {
		t.Errorf("acquirer stats %+v, want one approval", st)
	}

	// The widget started the payment: find it in the trail, to check it
	// through the API and to know its token.
	payID := paymentOfCall(t, s.gw.trail, callID)
	v := s.api.payment(t, payID)
	if v.State != "approved" || v.Result == nil {
		t.Fatalf("payment %s after the widget's submit: %s %+v", payID, v.State, v.Result)
	}
	checkToken(t, v.Result.Token, c)
	s.hangup(t, call)
	assertAgentHeardNoDigits(t, s.agent)
	recs := s.finish(t)
	requireEvents(t, paymentEvents(recs, payID), audit.EventAuthorizationResult, audit.EventCardDataWiped, audit.EventSessionEnded)
	assertNoLeaks(t, s.rec, c, v.Result.Token)
}

// paymentOfCall reads the live audit trail for the payment started on
// callID.
func paymentOfCall(t *testing.T, trail, callID string) string {
	t.Helper()
	data, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		var r audit.Record
		if json.Unmarshal([]byte(line), &r) == nil && r.CallID == callID && r.Event == audit.EventSessionStarted && r.PaymentID != "" {
			return r.PaymentID
		}
	}
	t.Fatalf("no session.started for call %s in the audit trail", callID)
	return ""
}

// screenshot saves the page in test/artifacts (ignored by git).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join("..", "artifacts")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}

package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/tonevault/tonevault/capture"
)

const chromiumPath = "/usr/bin/chromium"

// requireChromium skips without Debian's chromium, or fails when
// TONEVAULT_REQUIRE_TOOLS=1 (make test).
func requireChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("TONEVAULT_CHROMIUM")
	if path == "" {
		path = chromiumPath
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

// TestWidgetEndToEnd opens the agent widget in headless Chromium against
// the API on a real capture.Manager: the agent takes a payment, the
// customer's key presses fill the fields live, the agent submits, and the
// outcome shows. Nothing on the page may hold card data.
func TestWidgetEndToEnd(t *testing.T) {
	browser := requireChromium(t)
	// The first payment is approved, then one is declined per case of
	// declines below.
	declines := []struct {
		res   capture.Result
		title string
		words string
	}{
		{capture.Result{Outcome: capture.OutcomeDeclined, Reason: "do_not_honour", ResponseCode: "05"}, "Payment declined", "The bank declined the payment."},
		{capture.Result{Outcome: capture.OutcomeFailed, Reason: "psp_timeout"}, "Payment failed", "The bank did not answer in time. The payment did not go through."},
		{capture.Result{Outcome: capture.OutcomeDeclined, Reason: "insufficient_funds", ResponseCode: "51"}, "Payment declined", "There are not enough funds on the card."},
		// An acquirer code the page has no words for.
		{capture.Result{Outcome: capture.OutcomeDeclined, Reason: "declined_Q9", ResponseCode: "Q9"}, "Payment declined", "The bank declined the payment (code Q9)."},
	}
	proc := &scripted{results: []capture.Result{{Outcome: capture.OutcomeApproved, AuthCode: "A1B2C3", ResponseCode: "00"}}}
	for _, d := range declines {
		proc.results = append(proc.results, d.res)
	}
	re := newRealEnv(t, proc)

	resp := re.do(t, "POST", "/v1/widget-tokens", testKey, `{"call_id":"call-1"}`)
	var tok widgetTokenResponse
	if err := json.Unmarshal(readBody(t, resp), &tok); err != nil || resp.StatusCode != 201 {
		t.Fatalf("widget token: %d %v", resp.StatusCode, err)
	}

	// Not t.TempDir: Chromium's helpers may still write to the profile
	// for a moment after the browser exits, which fails its cleanup.
	profile, err := os.MkdirTemp("", "tonevault-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for i := 0; i < 20 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	}()
	opts := []chromedp.ExecAllocatorOption{
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
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	var jsErrors []string
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			jsErrors = append(jsErrors, e.ExceptionDetails.Error())
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError {
				for _, a := range e.Args {
					jsErrors = append(jsErrors, string(a.Value)+a.Description)
				}
			}
		}
	})

	step := func(what string, actions ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, actions...); err != nil {
			shot(t, ctx, "widget-failed.png")
			t.Fatalf("%s: %v (JS errors: %v)", what, err, jsErrors)
		}
	}
	poll := func(what, js string) {
		t.Helper()
		step(what, chromedp.Poll(js, nil, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	}
	text := func(sel string) string {
		t.Helper()
		var s string
		step("read "+sel, chromedp.Text(sel, &s, chromedp.ByQuery))
		return s
	}

	var search string
	step("open the widget",
		chromedp.EmulateViewport(360, 720),
		chromedp.Navigate(re.ts.URL+"/widget/?call=call-1&token="+tok.Token),
		chromedp.WaitVisible("#amount", chromedp.ByID),
		chromedp.Evaluate(`location.search`, &search),
	)
	if strings.Contains(search, "token") || !strings.Contains(search, "call=call-1") {
		t.Errorf("the token was not stripped from the URL: %q", search)
	}

	step("take payment",
		chromedp.SetValue("#amount", "19.99", chromedp.ByID),
		chromedp.Click("#take", chromedp.ByID),
		chromedp.WaitVisible("#session", chromedp.ByID),
	)
	sess, ok := re.m.Session("call-1")
	if !ok {
		t.Fatal("no capture session on call-1")
	}
	if v := sess.View(); v.Amount != 1999 || v.Currency != "GBP" {
		t.Errorf("session amount %d %s", v.Amount, v.Currency)
	}
	if got := text("#summary"); !strings.Contains(got, "19.99") {
		t.Errorf("summary %q", got)
	}

	re.press("call-1", testPAN[:6])
	poll("six dots", `document.querySelector('[data-field="card_number"] .masked').textContent === "••••••"`)
	if got := text(`[data-field="card_number"] .brand`); !strings.EqualFold(got, "visa") {
		t.Errorf("brand %q", got)
	}
	re.press("call-1", testPAN[6:]+"#")
	poll("card number valid", `document.querySelector('[data-field="card_number"] .tick').textContent === "✓"`)
	if got := text(`[data-field="card_number"] .masked`); !strings.HasPrefix(got, "411111") || !strings.HasSuffix(got, "1111") || len([]rune(got)) != 16 {
		t.Errorf("masked card number %q", got)
	}
	// The agent resets the card number; the customer types it again.
	step("reset the card number", chromedp.Click(`[data-field="card_number"] button`, chromedp.ByQuery))
	poll("card number cleared", `document.querySelector('[data-field="card_number"] .tick').textContent === "" && document.querySelector('[data-field="card_number"] .masked').textContent === ""`)
	re.press("call-1", testPAN+"#")
	poll("card number valid again", `document.querySelector('[data-field="card_number"] .tick').textContent === "✓"`)
	re.press("call-1", testExpiry)
	poll("expiry valid", `document.querySelector('[data-field="expiry"] .tick').textContent === "✓"`)
	// The agent reloads the page mid-payment: the widget finds the
	// payment running on its call and follows it again.
	step("reload", chromedp.Reload(), chromedp.WaitReady("body", chromedp.ByQuery))
	poll("the running payment found after the reload", `!document.getElementById("session").hidden && document.getElementById("start").hidden && `+
		`document.querySelector('[data-field="expiry"] .tick').textContent === "✓" && document.querySelector('[data-field="card_number"] .masked').textContent.startsWith("411111")`)
	if got := text("#summary"); !strings.Contains(got, "19.99") {
		t.Errorf("summary after the reload %q", got)
	}
	re.press("call-1", testCVV[:2])
	poll("two dots", `document.querySelector('[data-field="security_code"] .masked').textContent === "••"`)
	if got := text("#status"); !strings.Contains(got, "2 digits") {
		t.Errorf("aria-live status %q", got)
	}
	re.press("call-1", testCVV[2:])
	poll("ready to submit", `!document.getElementById("submit").disabled`)
	shot(t, ctx, "widget-complete.png")

	var html string
	step("submit",
		chromedp.Click("#submit", chromedp.ByID),
		chromedp.WaitVisible("#result", chromedp.ByID),
		chromedp.OuterHTML("html", &html, chromedp.ByQuery),
	)
	if got := text("#result-title"); got != "Payment approved" {
		t.Errorf("result %q", got)
	}
	const masked = "411111••••••1111"
	if got := text("#result-detail"); !strings.Contains(got, "A1B2C3") || !strings.Contains(got, "Card Visa "+masked) {
		t.Errorf("result detail %q", got)
	}
	// The digits are wiped at the outcome; the masked number stays for
	// the agent to read back.
	if got := text(`[data-field="card_number"] .masked`); got != masked {
		t.Errorf("masked card number after the outcome %q, want %q", got, masked)
	}
	shot(t, ctx, "widget.png")
	assertNoCardData(t, "the widget's page", html)

	// Declines and failures are worded for the agent to read out, never
	// shown as the raw code.
	for i, d := range declines {
		step("new payment "+d.res.Reason,
			chromedp.Click("#again", chromedp.ByID),
			chromedp.WaitVisible("#amount", chromedp.ByID),
			chromedp.SetValue("#amount", "5.00", chromedp.ByID),
			chromedp.Click("#take", chromedp.ByID),
			chromedp.WaitVisible("#session", chromedp.ByID),
		)
		poll("payment started", `document.querySelector('[data-field="card_number"]').classList.contains("current") && document.querySelector('[data-field="card_number"] .masked').textContent === ""`)
		re.press("call-1", testPAN+"#"+testExpiry+testCVV)
		poll("ready to submit", `!document.getElementById("submit").disabled`)
		step("submit "+d.res.Reason, chromedp.Click("#submit", chromedp.ByID))
		poll("outcome shown", fmt.Sprintf(`!document.getElementById("result").hidden && document.getElementById("result-title").textContent === %q`, d.title))
		detail := text("#result-detail")
		if !strings.Contains(detail, d.words) || strings.Contains(detail, d.res.Reason) {
			t.Errorf("%s: result detail %q, want the words %q and not the code", d.res.Reason, detail, d.words)
		}
		if !strings.Contains(detail, masked) {
			t.Errorf("%s: result detail %q without the masked card number", d.res.Reason, detail)
		}
		if got := text(`[data-field="card_number"] .masked`); got != masked {
			t.Errorf("%s: masked card number after the outcome %q", d.res.Reason, got)
		}
		if got := text("#status"); !strings.Contains(got, d.words) {
			t.Errorf("%s: status for screen readers %q", d.res.Reason, got)
		}
		step("page", chromedp.OuterHTML("html", &html, chromedp.ByQuery))
		assertNoCardData(t, "the widget's page", html)
		if i == 0 {
			shot(t, ctx, "widget-declined.png")
		}
	}
	if len(jsErrors) > 0 {
		t.Errorf("JavaScript errors (CSP violations show here too): %v", jsErrors)
	}
}

// scripted approves or declines each authorization with the next of its
// results; it keeps nothing of the card data it is lent.
type scripted struct {
	mu      sync.Mutex
	results []capture.Result
}

func (p *scripted) Tokenize(ctx context.Context, c *capture.Card, req capture.PaymentRequest) (string, error) {
	return "tok_4f2a9c", nil
}

func (p *scripted) Authorize(ctx context.Context, c *capture.Card, token string, req capture.PaymentRequest) (capture.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.results) == 0 {
		return capture.Result{}, errors.New("scripted: no result left")
	}
	r := p.results[0]
	p.results = p.results[1:]
	r.Token = token
	return r, nil
}

// shot saves a screenshot in test/artifacts (ignored by git).
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.CaptureScreenshot(&png)); err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join("..", "test", "artifacts")
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

package api

import (
	"regexp"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/capture"
	"github.com/tonevault/tonevault/psp"
)

// widgetTable returns the keys of the object literal `const name = {...}`
// in the widget's script.
func widgetTable(t *testing.T, js, name string) map[string]bool {
	t.Helper()
	start := strings.Index(js, "const "+name+" = {")
	if start < 0 {
		t.Fatalf("widget.js has no table %s", name)
	}
	end := strings.Index(js[start:], "};")
	if end < 0 {
		t.Fatalf("widget.js: table %s does not end", name)
	}
	keys := map[string]bool{}
	for _, m := range regexp.MustCompile(`([a-z0-9_]+): "`).FindAllStringSubmatch(js[start:start+end], -1) {
		keys[m[1]] = true
	}
	return keys
}

// TestWidgetWords: every reason code the widget can be shown has words
// for the agent, so a new code in capture or psp fails here rather than
// reaching an agent's screen raw.
func TestWidgetWords(t *testing.T) {
	b, err := widgetFS.ReadFile("widget/widget.js")
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	fields, outcomes := widgetTable(t, js, "reasons"), widgetTable(t, js, "outcomes")

	for _, r := range []string{capture.ReasonLuhn, capture.ReasonLength, capture.ReasonBrandNotAccepted,
		capture.ReasonUnknownBrand, capture.ReasonMonth, capture.ReasonExpired, capture.ReasonTimeout} {
		if !fields[r] {
			t.Errorf("field reason %q has no words in widget.js", r)
		}
	}

	want := []string{
		capture.ReasonAttemptsExhausted, capture.ReasonNotConfigured, capture.ReasonCancelled,
		capture.ReasonCallEnded, capture.ReasonSessionTimeout, capture.ReasonShutdown,
		capture.ReasonTokenization, capture.ReasonAuthorization, capture.ReasonInvalidResult,
		// A result without a reason ends with its outcome as the reason.
		capture.OutcomeDeclined, capture.OutcomeFailed,
		psp.ReasonTimeout, psp.ReasonConnectionLost, psp.ReasonUnavailable, psp.ReasonInvalid, psp.ReasonBadResponse,
		"psp_error", // package payment's reason when the connector gives none
	}
	// Every response code the connector knows; the rest decline as
	// "declined_<code>", which the widget words with the code.
	const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for _, a := range alnum {
		for _, b := range alnum {
			_, reason := psp.Classify(string(a) + string(b))
			if reason != "approved" && !strings.HasPrefix(reason, "declined_") {
				want = append(want, reason)
			}
		}
	}
	for _, r := range want {
		if !outcomes[r] {
			t.Errorf("outcome reason %q has no words in widget.js", r)
		}
	}
	if len(want) < 30 {
		t.Errorf("only %d reasons checked: the code table was not read", len(want))
	}
}

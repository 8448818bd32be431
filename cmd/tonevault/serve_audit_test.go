package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/psp"
)

func TestConfigSource(t *testing.T) {
	if r, d := configSource(""); r != audit.ReasonConfigDefault || d != "" {
		t.Errorf("configSource(\"\") = %s, %q", r, d)
	}
	path := filepath.Join(t.TempDir(), "tonevault.yaml")
	os.WriteFile(path, []byte("hello"), 0o600)
	// sha256("hello"): plain hex, whatever digit runs it holds.
	if r, d := configSource(path); r != audit.ReasonConfigFile || d != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("configSource(file) = %s, %q", r, d)
	}
	if r, d := configSource(path + ".gone"); r != audit.ReasonConfigFile || d != "" {
		t.Errorf("configSource(missing file) = %s, %q", r, d)
	}
}

// TestAuditCodes: the codes other packages hand to the trail are codes it
// knows, so their records are not refused nor written as unlisted.
func TestAuditCodes(t *testing.T) {
	// Every reason the acquirer connector gives, for every response code:
	// known, or "declined_<code>", which capture records as declined.
	const alnum = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	for _, a := range alnum {
		for _, b := range alnum {
			_, reason := psp.Classify(string(a) + string(b))
			if !audit.Reason(reason).Known() && !strings.HasPrefix(reason, "declined_") {
				t.Errorf("psp.Classify(%c%c) reason %q is not an audit code", a, b, reason)
			}
		}
	}
	// The connector's own failures (reversal reasons among them), and the
	// payment service's fallback.
	for _, r := range []string{psp.ReasonTimeout, psp.ReasonConnectionLost, psp.ReasonUnavailable, psp.ReasonInvalid, psp.ReasonBadResponse, "psp_error"} {
		if auditCode(r) != audit.Reason(r) {
			t.Errorf("auditCode(%q) = %s", r, auditCode(r))
		}
	}
	// The reason labels media reports to FailClosed (media/metrics.go,
	// failClosed).
	for _, r := range []string{"unknown_payload_type", "oversize", "short_header", "bad_version", "bad_csrc_count", "bad_extension", "bad_padding"} {
		if auditCode(r) != audit.Reason(r) {
			t.Errorf("auditCode(%q) = %s", r, auditCode(r))
		}
	}
	for _, s := range []string{"", "late_response", "4111111111111111", "psp timeout"} {
		if auditCode(s) != audit.ReasonUnlisted {
			t.Errorf("auditCode(%q) = %s, want unlisted", s, auditCode(s))
		}
	}
}

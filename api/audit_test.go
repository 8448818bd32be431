package api

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tonevault/tonevault/audit"
)

// TestAuditUnavailableRefusesPayments: while the audit trail cannot be
// written, a new payment is refused with 503 problem+json (the real
// capture.Manager says why); once it can, payments start again.
func TestAuditUnavailableRefusesPayments(t *testing.T) {
	re := newRealEnv(t, approver{})
	re.capAudit.mu.Lock()
	re.capAudit.fail = fmt.Errorf("%w (disk_full): no space left on device", audit.ErrUnavailable)
	re.capAudit.mu.Unlock()
	body := `{"amount":1999,"currency":"GBP"}`
	resp := re.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "audit-1")
	p := problem(t, resp, 503)
	if resp.Header.Get("Retry-After") == "" || p.Type != problemBase+"unavailable" || !strings.Contains(p.Detail, "audit trail") ||
		strings.Contains(p.Detail, "no space") {
		t.Errorf("503: %+v Retry-After %q; want the unavailable problem naming the audit trail, not its cause", p, resp.Header.Get("Retry-After"))
	}
	re.capAudit.mu.Lock()
	re.capAudit.fail = nil
	re.capAudit.mu.Unlock()
	resp = re.do(t, "POST", "/v1/calls/call-1/payments", testKey, body, "Idempotency-Key", "audit-1")
	if b := readBody(t, resp); resp.StatusCode != 201 {
		t.Fatalf("start after the trail came back: %d %s", resp.StatusCode, b)
	}
}

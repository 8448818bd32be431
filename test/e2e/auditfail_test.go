package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/testutil"
	"github.com/tonevault/tonevault/sip/caller"
)

// get fetches a path of the gateway's HTTP listener without credentials.
func (s *stack) get(t *testing.T, path string) (int, string) {
	t.Helper()
	res, err := http.Get("http://" + s.gw.http + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	s.rec.add("GET "+path, b)
	return res.StatusCode, string(b)
}

func (s *stack) waitReady(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("/readyz %d", want), timeout, func() bool {
		code, _ := s.get(t, "/readyz")
		return code == want
	})
}

// refuseAuth sends n API requests with a wrong key: each refusal is an
// audit record (api.auth_failed), up to the API's burst for failed
// authentications.
func (s *stack) refuseAuth(t *testing.T, n int) {
	t.Helper()
	for range n {
		req, _ := http.NewRequest("GET", "http://"+s.gw.http+"/v1/calls", nil)
		req.Header.Set("Authorization", "Bearer tvk_wrong-key")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
}

// auditDown checks what a payment and the gateway look like while the
// trail cannot be written: the live payment ended with audit_unavailable
// and its digits wiped, a new one is refused with 503 problem+json,
// /readyz is 503 and the metric counts the errors of reason.
func (s *stack) auditDown(t *testing.T, callID, paymentID string, reason audit.Reason) {
	t.Helper()
	v := s.api.waitState(t, paymentID, 60*time.Second, "failed")
	if v.Reason != string(audit.ReasonAuditUnavailable) {
		t.Errorf("payment ended failed with reason %q, want audit_unavailable", v.Reason)
	}
	if f := v.field("card_number"); f.Entered != 0 || strings.ContainsAny(f.Masked, "0123456789") {
		t.Errorf("card_number after audit_unavailable: %+v, want wiped", f)
	}
	r := s.api.do(t, "POST", "/v1/calls/"+callID+"/payments", `{"amount":1999,"currency":"GBP"}`,
		map[string]string{"Idempotency-Key": "idem-while-down-" + paymentID})
	if r.code != 503 || r.header.Get("Content-Type") != "application/problem+json" || r.header.Get("Retry-After") == "" ||
		!strings.Contains(string(r.body), "audit trail") {
		t.Errorf("new payment while the trail is down: %d %s Retry-After %q: %s; want 503 problem+json naming the audit trail",
			r.code, r.header.Get("Content-Type"), r.header.Get("Retry-After"), r.body)
	}
	if code, body := s.get(t, "/readyz"); code != 503 || !strings.Contains(body, "audit") {
		t.Errorf("/readyz = %d %q, want 503 naming the audit trail", code, body)
	}
	_, metrics := s.get(t, "/metrics")
	for _, re := range []string{
		`(?m)^tonevault_audit_errors_total\{reason="` + string(reason) + `"\} [1-9]`,
		`(?m)^tonevault_audit_up 0$`,
		`(?m)^tonevault_audit_queue_depth \d`,
	} {
		if !regexp.MustCompile(re).MatchString(metrics) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}

// payAfterRecovery takes a whole payment on the call once the trail is
// back, submitting until Vault (if it was down too) answers.
func (s *stack) payAfterRecovery(t *testing.T, call *caller.Call, callID string, c card) view {
	t.Helper()
	pay := s.api.startPayment(t, callID, "order-after")
	typeCard(t, call, c.keys(), caller.RFC4733)
	s.api.waitState(t, pay.ID, 30*time.Second, "complete")
	return s.submitUntilApproved(t, pay.ID, "after recovery", 60*time.Second)
}

// checkTrail: the payment that was live ended with audit_unavailable in
// the trail, and an audit.resumed record names what failed.
func checkTrail(t *testing.T, recs []audit.Record, paymentID string, reason audit.Reason) {
	t.Helper()
	ended, resumed := false, false
	for _, r := range recs {
		if r.PaymentID == paymentID && r.Event == audit.EventSessionEnded {
			ended = r.Reason == audit.ReasonAuditUnavailable
		}
		if r.Event == audit.EventAuditResumed && r.Reason == reason {
			resumed = true
		}
	}
	if !ended {
		t.Errorf("the trail has no session.ended audit_unavailable for the payment cut off; its events: %v", paymentEvents(recs, paymentID))
	}
	requireEvents(t, paymentEvents(recs, paymentID), audit.EventCardDataWiped)
	if !resumed {
		t.Errorf("the trail has no audit.resumed record with reason %s", reason)
	}
}

// TestAuditDiskFull: the trail's file system fills up during a payment.
// The payment ends with audit_unavailable and is wiped, new ones get 503,
// /readyz is 503 and the metric counts the errors; the call goes on,
// masked. Once space is freed the gateway recovers by itself, a payment
// completes, and the trail verifies against its anchor (on another file
// system).
func TestAuditDiskFull(t *testing.T) {
	t.Parallel()
	small := testutil.SmallFS(t, 256<<10)
	anchor := filepath.Join(t.TempDir(), "audit.anchor")
	s := newStack(t, stackOptions{auditDir: small, audit: "  checkpoint_interval: 500ms\n  anchor_file: " + anchor,
		verify: func(s *stack) ([]string, []string) {
			return []string{"--hmac-key-file", s.gw.trail + ".devkey", "--key-id", "dev", "--anchor-file", anchor}, nil
		}})
	c := visaApproved
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	first := s.api.startPayment(t, callID, "order-disk-full")
	typeCard(t, call, []byte(c.pan[:8]), caller.RFC4733)
	waitFor(t, "8 digits of the card number", 20*time.Second, func() bool {
		return s.api.payment(t, first.ID).field("card_number").Entered == 8
	})

	filler := testutil.Fill(t, small)
	s.refuseAuth(t, 30) // records, more than the trail's last page can take
	s.waitReady(t, 503, 60*time.Second)
	s.auditDown(t, callID, first.ID, audit.ReasonDiskFull)
	// The call goes on, masked: the customer types on.
	typeCard(t, call, []byte(c.pan[8:]+"#"), caller.RFC4733)
	if id := s.api.answeredCall(t); id != callID {
		t.Errorf("the call is gone: %q", id)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t, 200, 60*time.Second)
	v := s.payAfterRecovery(t, call, callID, c)
	s.hangup(t, call)
	assertAgentHeardNoDigits(t, s.agent)
	recs := s.finish(t)
	checkTrail(t, recs, first.ID, audit.ReasonDiskFull)
	requireEvents(t, paymentEvents(recs, v.ID), audit.EventAuthorizationResult, audit.EventSessionEnded)
	assertNoLeaks(t, s.rec, c, v.Result.Token, v.field("card_number").Masked)
}

// TestAuditVaultSignerDown: with checkpoints signed and anchored by Vault,
// Vault stops during a payment: the same as a full disk, and the same
// recovery once it is back; the trail verifies with Vault's key against
// Vault's anchor.
func TestAuditVaultSignerDown(t *testing.T) {
	t.Parallel()
	s := newStack(t, stackOptions{persistentVault: true, audit: "  signer: vault\n  anchor: vault\n  checkpoint_interval: 500ms",
		verify: func(s *stack) ([]string, []string) {
			return []string{"--vault", "--anchor-vault"}, []string{"VAULT_ADDR=" + s.vault.Addr, "VAULT_TOKEN=" + s.vault.RootToken}
		}})
	c := visaApproved
	call := s.dial(t)
	callID := s.api.answeredCall(t)
	first := s.api.startPayment(t, callID, "order-vault-down")
	typeCard(t, call, []byte(c.pan[:8]), caller.RFC4733)
	waitFor(t, "8 digits of the card number", 20*time.Second, func() bool {
		return s.api.payment(t, first.ID).field("card_number").Entered == 8
	})

	s.vault.Stop()
	s.refuseAuth(t, 1) // a record, so that the next checkpoint is due
	s.waitReady(t, 503, 90*time.Second)
	s.auditDown(t, callID, first.ID, audit.ReasonSignerUnavailable)

	s.vault.Restart()
	s.waitReady(t, 200, 90*time.Second)
	v := s.payAfterRecovery(t, call, callID, c)
	s.hangup(t, call)
	assertAgentHeardNoDigits(t, s.agent)
	recs := s.finish(t)
	checkTrail(t, recs, first.ID, audit.ReasonSignerUnavailable)
	assertNoLeaks(t, s.rec, c, v.Result.Token, v.field("card_number").Masked)
}

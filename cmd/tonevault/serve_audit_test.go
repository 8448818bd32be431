package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/internal/testutil"
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

// testAuditQueue is a real audit trail (a Queue in front of a Writer on a
// temporary file, HMAC-signed, anchored beside it), closed at the end of
// the test.
func testAuditQueue(t *testing.T) *audit.Queue {
	t.Helper()
	dir := t.TempDir()
	h, err := audit.NewHMAC(audit.HMACKey{ID: "k1", Key: auditTestKey})
	if err != nil {
		t.Fatal(err)
	}
	w, err := audit.Open(context.Background(), filepath.Join(dir, "audit.jsonl"), audit.Options{Signer: h, Anchor: &audit.FileAnchor{Path: filepath.Join(dir, "audit.anchor")}})
	if err != nil {
		t.Fatal(err)
	}
	q, err := audit.NewQueue(w, audit.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := q.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return q
}

// TestServeAuditDiskFull: the gateway's trail is on a file system that
// fills up. /readyz turns 503 and the metrics say why; the records of the
// meantime (refused API requests here) wait in the queue; once space is
// freed the gateway recovers by itself, and the trail verifies against its
// anchor with every record in it.
func TestServeAuditDiskFull(t *testing.T) {
	small := testutil.SmallFS(t, 128<<10)
	cfgPath, _ := testConfig(t)
	trail := filepath.Join(small, "audit.jsonl")
	anchor := filepath.Join(t.TempDir(), "audit.anchor") // on another file system
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := regexp.MustCompile(`(?m)^  path: .*$`).ReplaceAllString(string(b),
		"  path: "+trail+"\n  key_file: "+filepath.Join(filepath.Dir(cfgPath), "audit.key")+"\n  anchor_file: "+anchor+"\n  checkpoint_interval: 200ms")
	os.WriteFile(filepath.Join(filepath.Dir(cfgPath), "audit.key"), auditTestKey, 0o600)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- serveContext(ctx, []string{"--config", cfgPath}, &stdout, &stderr) }()
	l := listeners(t, &stdout, done)
	base := "http://" + l["http"]
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz before = %d %s", code, body)
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; stderr:\n%s", what, stderr.String())
			}
		}
	}
	refused := 0
	refuse := func(n int) {
		for range n {
			req, _ := http.NewRequest("GET", base+"/v1/calls", nil)
			req.Header.Set("Authorization", "Bearer wrong-key")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode == 401 { // audited; past a burst, 429 and not
				refused++
			}
		}
	}

	filler := testutil.Fill(t, small)
	// api.auth_failed records, more than the trail's last page can take.
	if refuse(40); refused < 20 {
		t.Fatalf("only %d refused requests audited", refused)
	}
	waitUntil("/readyz to fail", func() bool { code, _ := get(t, base+"/readyz"); return code == 503 })
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "audit") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^tonevault_audit_errors_total\{reason="disk_full"\} [1-9]`),
		regexp.MustCompile(`(?m)^tonevault_audit_up 0$`),
		regexp.MustCompile(`(?m)^tonevault_audit_queue_depth [1-9]`),
	} {
		if !want.MatchString(metrics) {
			t.Errorf("/metrics has no line matching %s", want)
		}
	}
	if !strings.Contains(stderr.String(), "AUDIT TRAIL CANNOT BE WRITTEN") {
		t.Error("the log does not say the trail cannot be written")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitUntil("/readyz to recover", func() bool { code, _ := get(t, base+"/readyz"); return code == 200 })
	if _, metrics := get(t, base+"/metrics"); !strings.Contains(metrics, "\ntonevault_audit_up 1\n") {
		t.Error("tonevault_audit_up is not 1 after recovery")
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exit %d; stderr:\n%s", code, stderr.String())
	}
	code, out, errOut := auditCLI("audit", "verify", "--hmac-key-file", filepath.Join(filepath.Dir(cfgPath), "audit.key"), "--key-id", "dev", "--anchor-file", anchor, trail)
	if code != 0 || !strings.Contains(out, ", closed, ") {
		t.Fatalf("verify = %d %q %q", code, out, errOut)
	}
	data, _ := os.ReadFile(trail)
	if n := strings.Count(string(data), `"event":"api.auth_failed"`); n != refused {
		t.Errorf("%d api.auth_failed records in the trail, want %d", n, refused)
	}
	if !strings.Contains(string(data), `"event":"audit.resumed","outcome":"info","reason":"disk_full"`) {
		t.Error("no audit.resumed record naming disk_full")
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tonevault/tonevault/audit"
)

func auditCLI(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

var auditTestKey = []byte("cmd-test-key-0123456789abcdefghij")

// writeAuditTrail writes a trail of 8 records (two calls) with a checkpoint
// every 4, each anchored in TRAIL.anchor, and the key file; it returns
// the paths of the trail and the key.
func writeAuditTrail(t *testing.T) (trail, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	trail = filepath.Join(dir, "audit.jsonl")
	keyFile = filepath.Join(dir, "audit.key")
	if err := os.WriteFile(keyFile, auditTestKey, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := audit.NewHMAC(audit.HMACKey{ID: "k1", Key: auditTestKey})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 11, 23, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	ctx := context.Background()
	w, err := audit.Open(ctx, trail, audit.Options{Signer: h, CheckpointEvery: 4, Now: clock, Anchor: &audit.FileAnchor{Path: trail + ".anchor"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []audit.Record{
		{Actor: "crm", CallID: "c-1", PaymentID: "p-1", Event: audit.EventSessionStarted, Outcome: audit.Success},
		{Actor: "customer", CallID: "c-1", PaymentID: "p-1", Event: audit.EventFieldCompleted, Outcome: audit.Success, Field: "card_number", MaskedPAN: "411111******1111"},
		{Actor: "customer", CallID: "c-1", PaymentID: "p-1", Event: audit.EventFieldFailed, Outcome: audit.Failure, Reason: audit.ReasonMonth, Field: "expiry"},
		{Actor: "system", CallID: "c-1", PaymentID: "p-1", Event: audit.EventSessionEnded, Outcome: audit.Info, Reason: audit.ReasonCancelled, State: "cancelled"},
		{Actor: "=cmd|' /C calc'!A0", Origin: "192.0.2.1", Event: audit.EventAPIAuthFailed, Outcome: audit.Failure, Reason: audit.ReasonUnknownKey, Route: "GET /v1/calls"},
		{Actor: "crm", CallID: "c-2", PaymentID: "p-2", Event: audit.EventSessionStarted, Outcome: audit.Success},
		{Actor: "customer", CallID: "c-2", PaymentID: "p-2", Event: audit.EventFieldCompleted, Outcome: audit.Success, Field: "card_number", MaskedPAN: "555555******4444"},
		{Actor: "system", CallID: "c-2", PaymentID: "p-2", Event: audit.EventSessionEnded, Outcome: audit.Success, Reason: audit.ReasonApproved, State: "approved"},
	} {
		if _, err := w.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// seq 1 audit.started, 2-4, checkpoint 5, 6-9, checkpoint 10, 11,
	// checkpoint 12 (close).
	return trail, keyFile
}

func editTrail(t *testing.T, path string, edit func(lines []string) []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	out := strings.Join(edit(lines), "\n") + "\n"
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerify(t *testing.T) {
	trail, key := writeAuditTrail(t)
	code, out, errOut := auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "k1", "--anchor-file", trail+".anchor", trail)
	if code != 0 || out != trail+`: OK: 12 records, 3 checkpoints, last seq 12, closed, signatures verified (key id "k1"), anchored through seq 12`+"\n" || errOut != "" {
		t.Errorf("verify = %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, errOut = auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "k1", trail)
	if code != 0 || !strings.Contains(out, "end NOT checked against an anchor") || !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "--anchor-file") {
		t.Errorf("verify without anchor = %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	// Options after the file work too.
	if code, _, _ := auditCLI("audit", "verify", trail, "--key-id=k1", "--hmac-key-file="+key); code != 0 {
		t.Errorf("verify with options last = %d", code)
	}
	code, out, errOut = auditCLI("audit", "verify", trail)
	if code != 0 || !strings.Contains(out, "OK: 12 records, 3 checkpoints") || !strings.Contains(out, "NOT checked") || !strings.Contains(errOut, "warning") {
		t.Errorf("verify without key = %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

func TestAuditVerifyTampered(t *testing.T) {
	otherKey := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(otherKey, bytes.Repeat([]byte("o"), 32), 0o600)
	for _, tc := range []struct {
		name string
		edit func(ls []string) []string
		key  string // "" the right key, "-" none, else a key file
		want string
	}{
		{"changed", func(ls []string) []string {
			ls[2] = strings.Replace(ls[2], "card_number", "card_numbex", 1)
			return ls
		}, "", "line 3 (seq 3): record changed"},
		{"deleted", func(ls []string) []string { return append(ls[:5:5], ls[6:]...) }, "", "line 6 (seq 7): record removed"},
		{"swapped", func(ls []string) []string { ls[6], ls[7] = ls[7], ls[6]; return ls }, "", "line 7 (seq 8): record inserted or out of order"},
		{"inserted copy", func(ls []string) []string { return append(ls[:8:8], append([]string{ls[1]}, ls[8:]...)...) }, "", "line 9 (seq 2): record inserted or out of order"},
		{"cut", func(ls []string) []string { return ls[:11] }, "", "seq 12: records cut off the end: the anchor holds checkpoint seq 12 of 2025-11-23T10:12:00.000000000Z, but the trail ends at seq 11"},
		{"cut after a checkpoint", func(ls []string) []string { return ls[:10] }, "", "seq 12: records cut off the end"},
		{"older copy", func(ls []string) []string { return ls[:5] }, "", "seq 12: records cut off the end"},
		{"cut mid-line", func(ls []string) []string { ls[11] = ls[11][:50]; return ls }, "", "line 12: malformed record"},
		{"wrong key", func(ls []string) []string { return ls }, otherKey, "line 5 (seq 5): bad checkpoint signature"},
		{"changed, no key", func(ls []string) []string {
			ls[7] = strings.Replace(ls[7], "c-2", "c-3", 1)
			return ls
		}, "-", "line 8 (seq 8): record changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			trail, key := writeAuditTrail(t)
			editTrail(t, trail, tc.edit)
			args := []string{"audit", "verify", trail, "--anchor-file", trail + ".anchor"}
			switch tc.key {
			case "":
				args = append(args, "--hmac-key-file", key, "--key-id", "k1")
			case "-":
			default:
				args = append(args, "--hmac-key-file", tc.key, "--key-id", "k1")
			}
			code, out, _ := auditCLI(args...)
			if code != 1 || !strings.HasPrefix(out, trail+": FAILED: "+tc.want) {
				t.Errorf("verify = %d, %q; want 1, %q", code, out, tc.want)
			}
		})
	}
	// A file cut in the middle of its last line (the anchor not needed).
	trail, key := writeAuditTrail(t)
	b, _ := os.ReadFile(trail)
	os.WriteFile(trail, b[:len(b)-10], 0o600)
	code, out, _ := auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "k1", trail)
	if code != 1 || !strings.Contains(out, "FAILED: line 12: truncated line") {
		t.Errorf("verify truncated = %d, %q", code, out)
	}
}

// TestAuditVerifyCutControl: a trail cut right after a checkpoint passes
// without its anchor (the blind spot the anchor closes, shown so that the
// anchored failure above is not taken for granted) and fails with it.
func TestAuditVerifyCutControl(t *testing.T) {
	trail, key := writeAuditTrail(t)
	editTrail(t, trail, func(ls []string) []string { return ls[:10] }) // seq 10 is an interval checkpoint
	code, out, _ := auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "k1", trail)
	if code != 0 || !strings.Contains(out, "OK: 10 records, 2 checkpoints, last seq 10, not closed: checkpointed through seq 10, 0 records after it") {
		t.Fatalf("without the anchor: %d %q", code, out)
	}
	code, out, _ = auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "k1", "--anchor-file", trail+".anchor", trail)
	if code != 1 || !strings.Contains(out, "FAILED: seq 12: records cut off the end") {
		t.Fatalf("with the anchor: %d %q", code, out)
	}
}

// TestAuditVerifyLive: the trail of a running writer verifies and says how
// far it is checkpointed and anchored.
func TestAuditVerifyLive(t *testing.T) {
	dir := t.TempDir()
	trail := filepath.Join(dir, "audit.jsonl")
	keyFile := filepath.Join(dir, "audit.key")
	os.WriteFile(keyFile, auditTestKey, 0o600)
	h, _ := audit.NewHMAC(audit.HMACKey{ID: "k1", Key: auditTestKey})
	ctx := context.Background()
	w, err := audit.Open(ctx, trail, audit.Options{Signer: h, CheckpointEvery: 3, Anchor: &audit.FileAnchor{Path: trail + ".anchor"}})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	for range 4 { // seq 1 started, 2-3, checkpoint 4, 5-6
		if _, err := w.Append(ctx, audit.Record{Actor: "crm", Event: audit.EventSessionStarted, Outcome: audit.Success}); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := auditCLI("audit", "verify", "--hmac-key-file", keyFile, "--key-id", "k1", "--anchor-file", trail+".anchor", trail)
	want := trail + `: OK: 6 records, 1 checkpoints, last seq 6, not closed: checkpointed through seq 4, 2 records after it (a live trail, or its writer stopped), signatures verified (key id "k1"), anchored through seq 4` + "\n"
	if code != 0 || out != want || errOut != "" {
		t.Errorf("verify of a live trail = %d\nstdout %q\nstderr %q\nwant %q", code, out, errOut, want)
	}
}

func TestAuditVerifyUsage(t *testing.T) {
	trail, key := writeAuditTrail(t)
	short := filepath.Join(t.TempDir(), "short.key")
	os.WriteFile(short, []byte("short"), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"audit", "verify", "--help"}, 0, "Usage: tonevault audit verify", ""},
		{[]string{"audit", "verify", "-h"}, 0, "Exit status: 0 when the trail is intact", ""},
		{[]string{"help", "audit"}, 0, "Usage: tonevault audit <command>", ""},
		{[]string{"audit", "--help"}, 0, "verify", ""},
		{[]string{"audit"}, 2, "", "Usage: tonevault audit <command>"},
		{[]string{"audit", "verfy"}, 2, "", `unknown command "verfy"`},
		{[]string{"audit", "verify"}, 2, "", "want one TRAIL, got 0"},
		{[]string{"audit", "verify", trail, trail}, 2, "", "want one TRAIL, got 2"},
		{[]string{"audit", "verify", "--bogus", trail}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"audit", "verify", "--hmac-key-file", key, trail}, 2, "", "--hmac-key-file and --key-id go together"},
		{[]string{"audit", "verify", "--key-id", "k1", trail}, 2, "", "--hmac-key-file and --key-id go together"},
		{[]string{"audit", "verify", "--hmac-key-file", short, "--key-id", "k1", trail}, 2, "", "want at least 32"},
		{[]string{"audit", "verify", "--hmac-key-file", "/nonexistent", "--key-id", "k1", trail}, 2, "", "no such file"},
		{[]string{"audit", "verify", "--hmac-key-file", key, "--key-id", "has space", trail}, 2, "", "key id"},
		{[]string{"audit", "verify", "/nonexistent/audit.jsonl"}, 2, "", "no such file"},
		{[]string{"audit", "verify", t.TempDir()}, 2, "", "is a directory"},
		{[]string{"audit", "verify", "--anchor-file", "/nonexistent.anchor", trail}, 2, "", "--anchor-file"},
		{[]string{"audit", "verify", "--anchor-file", trail + ".anchor", "--anchor-vault", trail}, 2, "", "exclude each other"},
		{[]string{"audit", "verify", "--anchor-vault", "--anchor-kv", "nomount", trail}, 2, "", "want MOUNT/PREFIX"},
	} {
		code, out, errOut := auditCLI(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("%q = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
		if tc.code == 0 && errOut != "" {
			t.Errorf("%q wrote to stderr: %q", tc.args, errOut)
		}
	}
}

func TestAuditQuery(t *testing.T) {
	trail, _ := writeAuditTrail(t)
	seqs := func(out string) string {
		var s []string
		for l := range strings.SplitSeq(strings.TrimSuffix(out, "\n"), "\n") {
			if l == "" {
				continue
			}
			seq, _, _ := strings.Cut(strings.TrimPrefix(l, `{"seq":`), ",")
			s = append(s, seq)
		}
		return strings.Join(s, " ")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "1 2 3 4 5 6 7 8 9 10 11 12"},
		{[]string{"--call", "c-1"}, "2 3 4 6"},
		{[]string{"--payment", "p-2"}, "8 9 11"},
		{[]string{"--event", "session.started"}, "2 8"},
		{[]string{"--event", "session.started,session.ended"}, "2 6 8 11"},
		{[]string{"--event", "field.*", "--event", "api.auth_failed"}, "3 4 7 9"},
		{[]string{"--call", "c-2", "--event", "field.completed"}, "9"},
		// The clock gives seq N the time 10:00 + N minutes.
		{[]string{"--since", "2025-11-23T10:03:00Z", "--until", "2025-11-23T10:06:00Z"}, "3 4 5"},
		{[]string{"--since", "2025-11-23T11:11:00+01:00"}, "11 12"},
		{[]string{"--until", "2025-11-23T10:02:00.000000001Z"}, "1 2"},
		{[]string{"--since", "2025-11-24"}, ""},
		{[]string{"--until", "2025-11-23"}, ""},
		{[]string{"--call", "nope"}, ""},
	} {
		args := append([]string{"audit", "query", trail}, tc.args...)
		code, out, errOut := auditCLI(args...)
		if code != 0 || errOut != "" || seqs(out) != tc.want {
			t.Errorf("%q = %d, seqs %q, stderr %q; want seqs %q", tc.args, code, seqs(out), errOut, tc.want)
		}
	}
	// JSON lines are the trail's lines, byte for byte.
	all, _ := os.ReadFile(trail)
	if _, out, _ := auditCLI("audit", "query", trail); out != string(all) {
		t.Error("query without filters is not the file")
	}
}

func TestAuditQueryCSV(t *testing.T) {
	trail, _ := writeAuditTrail(t)
	code, out, errOut := auditCLI("audit", "query", "--csv", "--event", "field.completed,api.auth_failed", trail)
	if code != 0 || errOut != "" {
		t.Fatalf("query --csv = %d, %q", code, errOut)
	}
	rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := "seq,time,actor,origin,call_id,payment_id,event,outcome,reason,masked_pan,key_id,sig,prev," +
		"field,state,trunk,method,status,route,digest,version,stan,response_code,expires_at,lost"
	if len(rows) != 4 || strings.Join(rows[0], ",") != header {
		t.Fatalf("rows %q", rows)
	}
	if r := rows[1]; r[0] != "3" || r[1] != "2025-11-23T10:03:00.000000000Z" || r[6] != "field.completed" || r[9] != "411111******1111" || len(r[12]) != 64 || r[13] != "card_number" {
		t.Errorf("row %q", r)
	}
	if r := rows[2]; r[6] != "api.auth_failed" || r[2] != "'=cmd|' /C calc'!A0" || r[8] != "unknown_key" || r[18] != "GET /v1/calls" {
		t.Errorf("formula not neutralised, or fields missing: %q", r)
	}
}

func TestAuditQueryErrors(t *testing.T) {
	trail, _ := writeAuditTrail(t)
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	b, _ := os.ReadFile(trail)
	lines := strings.SplitAfter(string(b), "\n")
	os.WriteFile(bad, []byte(lines[0]+lines[1]+"garbage\n"+lines[2]), 0o600)
	for _, tc := range []struct {
		args []string
		code int
		out  string
		err  string
	}{
		{[]string{"audit", "query", "--help"}, 0, "session.started", ""},
		{[]string{"audit", "query", "--event", "card.read", trail}, 2, "", `unknown event "card.read"`},
		{[]string{"audit", "query", "--event", "nope.*", trail}, 2, "", `no event in area "nope"`},
		{[]string{"audit", "query", "--since", "yesterday", trail}, 2, "", "not an RFC 3339 time"},
		{[]string{"audit", "query", "--since", "2025-11-24", "--until", "2025-11-23", trail}, 2, "", "--since must be before --until"},
		{[]string{"audit", "query"}, 2, "", "want one TRAIL, got 0"},
		{[]string{"audit", "query", "/nonexistent"}, 2, "", "no such file"},
		{[]string{"audit", "query", bad}, 2, `"seq":2,`, "line 3: malformed record"},
	} {
		code, out, errOut := auditCLI(tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("%q = %d\nstdout %q\nstderr %q\nwant %d, %q, %q", tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
	}
}

// TestAuditOldTrail: a trail written before reason codes and typed fields
// (free text in "reason") still verifies, and query shows it as it is.
func TestAuditOldTrail(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("..", "..", "audit", "testdata", "example-v0.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	trail, key := filepath.Join(dir, "old.jsonl"), filepath.Join(dir, "example.key")
	os.WriteFile(trail, old, 0o600)
	os.WriteFile(key, []byte("tonevault-example-key-not-secret"), 0o600)
	code, out, errOut := auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "example", trail)
	// Written before anchors: the only warning is that there is none.
	if code != 0 || !strings.Contains(out, "OK: 20 records, 3 checkpoints") || strings.Count(errOut, "warning") != 1 || !strings.Contains(errOut, "not checked against its anchor") {
		t.Errorf("verify old trail = %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	code, out, errOut = auditCLI("audit", "query", "--csv", "--event", "sip.call_ended", trail)
	rows, _ := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != 0 || errOut != "" || len(rows) != 2 || rows[1][8] != "BYE from customer" {
		t.Errorf("query old trail = %d, %q, %q", code, rows, errOut)
	}
	// One byte changed in an old line is still found.
	os.WriteFile(trail, bytes.Replace(old, []byte("BYE from customer"), []byte("BYE from customex"), 1), 0o600)
	if code, out, _ := auditCLI("audit", "verify", "--hmac-key-file", key, "--key-id", "example", trail); code != 1 || !strings.Contains(out, "line 17 (seq 17): record changed") {
		t.Errorf("verify changed old trail = %d, %q", code, out)
	}
}

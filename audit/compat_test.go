package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// oldExample is the example trail as versions before reason codes and
// typed fields wrote it: free text in "reason" ("expiry: in the past",
// "BYE from customer"), ids spelt without long digit runs. It must verify
// and continue as it is: verification checks integrity, not the code set.
const oldExample = "testdata/example-v0.jsonl"

func TestOldTrailVerifies(t *testing.T) {
	ctx := context.Background()
	b, err := os.ReadFile(oldExample)
	if err != nil {
		t.Fatal(err)
	}
	// The file is what it claims to be: free text, not codes.
	for _, old := range []string{`"reason":"expiry: in the past"`, `"reason":"BYE from customer"`, `"reason":"configs/tonevault.yaml sha256:5d41402abc4b2a76"`} {
		if !bytes.Contains(b, []byte(old)) {
			t.Fatalf("%s does not hold %s", oldExample, old)
		}
	}
	v := must(NewHMAC(exampleKey))
	sum, err := Verify(ctx, bytes.NewReader(b), v)
	if err != nil || sum.Records != 20 || sum.Checkpoints != 3 {
		t.Fatalf("Verify(old trail) = %+v, %v", sum, err)
	}
	// Tampering is still found in an old line.
	changed := bytes.Replace(b, []byte("in the past"), []byte("in the futur"), 1)
	if _, err := Verify(ctx, bytes.NewReader(changed), v); err == nil {
		t.Error("a changed old line verifies")
	}
	var reasons []string
	for r, err := range Records(bytes.NewReader(b)) {
		if err != nil {
			t.Fatal(err)
		}
		reasons = append(reasons, string(r.Reason))
	}
	if reasons[6] != "expiry: in the past" {
		t.Errorf("reason of seq 7 = %q", reasons[6])
	}
	var out bytes.Buffer
	if n, err := Query(bytes.NewReader(b), Filter{Events: []string{"field.failed"}}, &out, CSV); n != 1 || err != nil {
		t.Fatalf("Query = %d, %v", n, err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][8] != "expiry: in the past" || rows[1][13] != "" {
		t.Errorf("CSV of an old line: %q, %v", rows, err)
	}

	// A new Writer continues the old file; the whole verifies.
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := Open(ctx, path, Options{Signer: v})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, Record{Actor: "customer", CallID: exampleCall, Event: EventFieldFailed, Outcome: Failure, Reason: ReasonLuhn, Field: "card_number"}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err = verifyFile(t, path, v)
	if err != nil || sum.Records != 23 {
		t.Errorf("Verify(continued old trail) = %+v, %v", sum, err)
	}
	after, _ := os.ReadFile(path)
	if !strings.Contains(string(after), `"event":"audit.started","outcome":"info","reason":"continued"`) {
		t.Error("the old trail was not continued as a closed one")
	}
}

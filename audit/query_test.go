package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/example.jsonl and the fuzz seeds in testdata/fuzz")

// The example trail in testdata: a payment on one call, signed with a key
// that is in the repository and so protects nothing.
var exampleKey = HMACKey{ID: "example", Key: []byte("tonevault-example-key-not-secret")}

// exampleCall and examplePayment are ids as the gateway makes them.
const (
	exampleCall    = "c-7f3a6ek2qzm4tbw5"
	examplePayment = "pay_k5bqx2m7rt3vhn4wzc6yd2ja"
)

func exampleRecords() []Record {
	call, pay := exampleCall, examplePayment
	crm := "crm-prod"
	return []Record{
		{Actor: "system", Event: EventServiceStarted, Outcome: Success, Version: "v1.4.0"},
		{Actor: "system", Event: EventConfigLoaded, Outcome: Success, Reason: ReasonConfigFile, Digest: "5d41402abc4b2a76b9719d911017c592e3b0c44298fc1c149afbf4c8996fb924"},
		{Actor: "sip:192.0.2.1", Origin: "192.0.2.1:5060", CallID: call, Event: EventSIPCallStarted, Outcome: Success, Trunk: "carrier"},
		{Actor: crm, Origin: "10.0.0.7", CallID: call, PaymentID: pay, Event: EventSessionStarted, Outcome: Success},
		{Actor: "customer", CallID: call, PaymentID: pay, Event: EventFieldCompleted, Outcome: Success, Field: "card_number", MaskedPAN: "411111******1111"},
		{Actor: "customer", CallID: call, PaymentID: pay, Event: EventFieldFailed, Outcome: Failure, Reason: ReasonExpired, Field: "expiry"},
		{Actor: "customer", CallID: call, PaymentID: pay, Event: EventFieldCompleted, Outcome: Success, Field: "expiry"},
		{Actor: "customer", CallID: call, PaymentID: pay, Event: EventFieldCompleted, Outcome: Success, Field: "security_code"},
		{Actor: crm, Origin: "10.0.0.7", CallID: call, PaymentID: pay, Event: EventAuthorizationRequested, Outcome: Info, MaskedPAN: "411111******1111"},
		{Actor: crm, Origin: "10.0.0.7", CallID: call, PaymentID: pay, Event: EventAuthorizationResult, Outcome: Failure, Reason: ReasonDoNotHonour, ResponseCode: "05"},
		{Actor: crm, Origin: "10.0.0.7", CallID: call, PaymentID: pay, Event: EventCardDataWiped, Outcome: Success, Reason: ReasonSessionEnded, Field: "security_code"},
		{Actor: crm, Origin: "10.0.0.7", CallID: call, PaymentID: pay, Event: EventSessionEnded, Outcome: Failure, Reason: ReasonDoNotHonour, State: "declined"},
		{Actor: "anonymous", Origin: "192.0.2.10", Event: EventAPIAuthFailed, Outcome: Failure, Reason: ReasonUnknownKey, Route: "POST /v1/calls/{id}/payments"},
		{Actor: "sip:192.0.2.66", Origin: "192.0.2.66:5060", Event: EventSIPPeerRefused, Outcome: Failure, Reason: ReasonPeerNotAllowed, Trunk: "carrier", Method: "INVITE"},
		{Actor: "sip:192.0.2.1", Origin: "192.0.2.1:5060", CallID: call, Event: EventSIPCallEnded, Outcome: Success, Reason: ReasonCompleted, Trunk: "carrier"},
		{Actor: "system", Event: EventServiceStopped, Outcome: Success, Reason: ReasonStopRequested},
	}
}

// writeExample writes the example trail to path.
func writeExample(t testing.TB, path string) {
	t.Helper()
	ctx := context.Background()
	w, err := Open(ctx, path, Options{Signer: must(NewHMAC(exampleKey)), CheckpointEvery: 8, Now: clock()})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range exampleRecords() {
		if _, err := w.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExampleFile keeps testdata/example.jsonl what this version writes, so
// a change to the format shows up as a diff.
func TestExampleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "example.jsonl")
	writeExample(t, path)
	got, _ := os.ReadFile(path)
	golden := filepath.Join("testdata", "example.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		writeFuzzSeeds(t, got)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is out of date (go test ./audit -run TestExampleFile -update):\n got %s\nwant %s", golden, got, want)
	}
	sum, err := Verify(context.Background(), bytes.NewReader(want), must(NewHMAC(exampleKey)))
	if err != nil || sum.Records != 20 || sum.Checkpoints != 3 {
		t.Errorf("Verify(example) = %+v, %v", sum, err)
	}
}

func TestQuery(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "example.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	all := splitLines(b)
	t0 := time.Date(2025, 11, 23, 19, 46, 0, 123456789, time.UTC)
	at := func(seq int) time.Time { return t0.Add(time.Duration(seq) * time.Millisecond) } // the test clock
	for _, tc := range []struct {
		name string
		f    Filter
		seqs []int
	}{
		{"all", Filter{}, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{"payment", Filter{PaymentID: examplePayment}, []int{5, 6, 7, 8, 10, 11, 12, 13, 14}},
		{"call and event", Filter{CallID: exampleCall, Events: []string{"sip.*", "session.started"}}, []int{4, 5, 17}},
		{"field area", Filter{Events: []string{"field.*"}}, []int{6, 7, 8, 10}},
		{"failures by name", Filter{Events: []string{"api.auth_failed", "sip.peer_refused"}}, []int{15, 16}},
		{"since until", Filter{Since: at(5), Until: at(7)}, []int{5, 6}},
		{"since only", Filter{Since: at(19)}, []int{19, 20}},
		{"no match", Filter{CallID: "nope"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			n, err := Query(bytes.NewReader(b), tc.f, &out, JSONLines)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for _, s := range tc.seqs {
				want = append(append(want, all[s-1]...), '\n')
			}
			if n != len(tc.seqs) || !bytes.Equal(out.Bytes(), want) {
				t.Errorf("Query = %d lines:\n%s\nwant seqs %v", n, out.Bytes(), tc.seqs)
			}
			out.Reset()
			n, err = Query(bytes.NewReader(b), tc.f, &out, CSV)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := csv.NewReader(&out).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tc.seqs) || len(rows) != n+1 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
				t.Fatalf("CSV: %d matches, rows %q", n, rows)
			}
			for i, s := range tc.seqs {
				rec, _ := parseLine(all[s-1])
				if rows[i+1][0] != strconv.Itoa(s) || rows[i+1][1] != rec.Time.Format(TimeLayout) ||
					rows[i+1][6] != string(rec.Event) || rows[i+1][12] != rec.Prev || rows[i+1][8] != string(rec.Reason) ||
					rows[i+1][13] != rec.Field || rows[i+1][22] != rec.ResponseCode {
					t.Errorf("CSV row %q for line %s", rows[i+1], all[s-1])
				}
			}
		})
	}
}

func TestQueryCSVInjection(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 100)
	w.Append(ctx, Record{Actor: "=HYPERLINK(\"http://x\")", Origin: "-1+2, \"quoted\"\nnew line", Event: EventAPIAuthFailed, Outcome: Failure})
	w.Close(ctx)
	f, _ := os.Open(path)
	defer f.Close()
	var out bytes.Buffer
	if _, err := Query(f, Filter{Events: []string{"api.auth_failed"}}, &out, CSV); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&out).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if rows[1][2] != `'=HYPERLINK("http://x")` || rows[1][3] != "'-1+2, \"quoted\"\nnew line" {
		t.Errorf("row %q", rows[1])
	}
}

func TestQueryStopsAtBadLine(t *testing.T) {
	b, _ := os.ReadFile(filepath.Join("testdata", "example.jsonl"))
	ls := splitLines(b)
	ls[3] = []byte("not json")
	var out bytes.Buffer
	n, err := Query(bytes.NewReader(joinLines(ls)), Filter{}, &out, JSONLines)
	if n != 3 || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("Query = %d, %v", n, err)
	}
	_, err = Query(bytes.NewReader(b[:len(b)-3]), Filter{}, &out, CSV)
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("Query(truncated) = %v", err)
	}
}

func TestCheckEventPattern(t *testing.T) {
	for p, ok := range map[string]bool{
		"field.failed": true, "field.*": true, "tokenization.*": true, "audit.checkpoint": true,
		"field": false, "nope.*": false, "card.read": false, "*": false, "": false,
	} {
		if err := CheckEventPattern(p); (err == nil) != ok {
			t.Errorf("CheckEventPattern(%q) = %v", p, err)
		}
	}
}

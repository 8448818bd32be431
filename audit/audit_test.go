package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test card numbers only.
const (
	visa = "4111111111111111"
	mc   = "5555555555554444"
	amex = "378282246310005"
)

var testKey = HMACKey{ID: "test-1", Key: []byte("0123456789abcdef0123456789abcdef")}

func testHMAC(t testing.TB) *HMAC {
	t.Helper()
	h, err := NewHMAC(testKey)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// clock returns a clock that starts at a fixed time and moves 1 ms a call.
func clock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 11, 23, 19, 46, 0, 123456789, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

func openTest(t testing.TB, path string, every int) *Writer {
	t.Helper()
	w, err := Open(context.Background(), path, Options{Signer: testHMAC(t), CheckpointEvery: every, Now: clock(), Sync: SyncOnCheckpoint})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// sample is the i-th sample record (i from 0). Its STAN is i, a mark
// that tells the samples apart.
func sample(i int) Record {
	evs := []Event{EventSessionStarted, EventFieldCompleted, EventFieldFailed, EventFieldReset, EventAuthorizationRequested, EventAuthorizationResult, EventSessionEnded}
	r := Record{
		Actor:     fmt.Sprintf("agent-%c", 'a'+i%3),
		Origin:    "10.0.0.7",
		CallID:    fmt.Sprintf("c-%03d", i/7),
		PaymentID: fmt.Sprintf("p-%03d", i/7),
		Event:     evs[i%len(evs)],
		Outcome:   Success,
		STAN:      fmt.Sprintf("%06d", i),
	}
	if r.Event == EventFieldCompleted {
		r.MaskedPAN = "411111******1111"
		r.Field = "card_number"
	}
	if r.Event == EventFieldFailed {
		r.Outcome = Failure
		r.Field = "card_number"
		r.Reason = ReasonLuhn
	}
	return r
}

// writeTrail writes n sample records with a checkpoint every `every` and
// closes the file.
func writeTrail(t testing.TB, path string, n, every int) {
	t.Helper()
	w := openTest(t, path, every)
	ctx := context.Background()
	for i := range n {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func verifyFile(t testing.TB, path string, v Verifier) (Summary, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Verify(context.Background(), f, v)
}

func splitLines(b []byte) [][]byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	var out [][]byte
	for l := range bytes.SplitSeq(b, []byte("\n")) {
		out = append(out, append([]byte(nil), l...))
	}
	return out
}

func joinLines(ls [][]byte) []byte {
	var b []byte
	for _, l := range ls {
		b = append(append(b, l...), '\n')
	}
	return b
}

func TestWriteAndVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeTrail(t, path, 9, 4)
	sum, err := verifyFile(t, path, testHMAC(t))
	if err != nil {
		t.Fatal(err)
	}
	// audit.started, 9 records, checkpoints after seq 4, 9 and at close.
	if sum.Records != 13 || sum.Checkpoints != 3 || sum.LastSeq != 13 || !sum.Signed {
		t.Errorf("summary %+v, want 13 records, 3 checkpoints", sum)
	}
	b, _ := os.ReadFile(path)
	ls := splitLines(b)
	var got []string
	for i, l := range ls {
		r, err := parseLine(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		got = append(got, strings.Join([]string{string(r.Event), string(r.Reason), r.Field, r.STAN}, "/"))
	}
	want := "audit.started/created// session.started///000000 field.completed//card_number/000001 field.failed/luhn/card_number/000002 audit.checkpoint/interval// " +
		"field.reset///000003 authorization.requested///000004 authorization.result///000005 session.ended///000006 audit.checkpoint/interval// " +
		"session.started///000007 field.completed//card_number/000008 audit.checkpoint/close//"
	if g := strings.Join(got, " "); g != want {
		t.Errorf("events:\n got %s\nwant %s", g, want)
	}
	first, _ := parseLine(ls[0])
	if first.Prev != GenesisPrev || first.Seq != 1 {
		t.Errorf("first record %+v", first)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestExampleLine(t *testing.T) {
	r := Record{
		Seq: 2, Time: time.Date(2025, 11, 23, 19, 46, 1, 123456789, time.UTC),
		Actor: "crm-prod", Origin: "10.0.0.7", CallID: "c-7f3a", PaymentID: "p-91c2",
		Event: EventFieldCompleted, Outcome: Success, MaskedPAN: "411111******1111", Field: "card_number",
		Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":2,"time":"2025-11-23T19:46:01.123456789Z","actor":"crm-prod","origin":"10.0.0.7","call_id":"c-7f3a","payment_id":"p-91c2","event":"field.completed","outcome":"success","masked_pan":"411111******1111","field":"card_number","prev":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	back, err := parseLine(b)
	if err != nil || back != r {
		t.Errorf("parse back: %+v, %v", back, err)
	}
	// Whole seconds keep their 9 digits.
	r.Time = time.Date(2025, 11, 23, 19, 46, 1, 0, time.FixedZone("x", 3600))
	b, _ = r.MarshalJSON()
	if !bytes.Contains(b, []byte(`"time":"2025-11-23T18:46:01.000000000Z"`)) {
		t.Errorf("time not in UTC with 9 digits: %s", b)
	}
}

// TestTypedFieldsOnTheLine: every typed field, in its place on the line,
// and back.
func TestTypedFieldsOnTheLine(t *testing.T) {
	r := Record{
		Seq: 7, Time: time.Date(2025, 11, 23, 19, 46, 1, 5, time.UTC), Actor: "system",
		Event: EventSessionEnded, Outcome: Failure, Reason: ReasonDoNotHonour,
		Field: "expiry", State: "declined", Trunk: "carrier", Method: "INVITE", Status: 486,
		Route: "GET /v1/payments/{id}", Digest: strings.Repeat("ab", 32), Version: "v1.4.0",
		STAN: "000123", ResponseCode: "05", ExpiresAt: time.Date(2025, 11, 23, 20, 1, 2, 0, time.FixedZone("x", 3600)),
		Prev: GenesisPrev,
	}
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"seq":7,"time":"2025-11-23T19:46:01.000000005Z","actor":"system","event":"session.ended","outcome":"failure","reason":"do_not_honour",` +
		`"field":"expiry","state":"declined","trunk":"carrier","method":"INVITE","status":486,"route":"GET /v1/payments/{id}",` +
		`"digest":"` + strings.Repeat("ab", 32) + `","version":"v1.4.0","stan":"000123","response_code":"05",` +
		`"expires_at":"2025-11-23T19:01:02.000000000Z","prev":"` + GenesisPrev + `"}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	back, err := parseLine(b)
	if err != nil || !back.ExpiresAt.Equal(r.ExpiresAt) {
		t.Fatalf("parse back: %+v, %v", back, err)
	}
	back.ExpiresAt = r.ExpiresAt
	if back != r {
		t.Errorf("parse back: %+v", back)
	}
	for _, bad := range []string{`"expires_at":"tomorrow"`, `"expires_at":"2025-11-23T19:01:02Z"`} {
		l := bytes.Replace(b, []byte(`"expires_at":"2025-11-23T19:01:02.000000000Z"`), []byte(bad), 1)
		if _, err := parseLine(l); err == nil {
			t.Errorf("parseLine accepted %s", bad)
		}
	}
}

// tamper is one way to damage a trail of 13 lines written by
// writeTrail(9, 4): lines 5, 10 and 13 are checkpoints.
type tamper struct {
	name  string
	edit  func(t *testing.T, ls [][]byte) [][]byte
	raw   func(b []byte) []byte // instead of edit, on the file's bytes
	v     Verifier              // nil: the test key
	noKey bool                  // verify without a Verifier
	kind  error
	line  int
	seq   uint64
}

func replaceIn(t *testing.T, l []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(l, []byte(old)) {
		t.Fatalf("%q not in %s", old, l)
	}
	return bytes.Replace(l, []byte(old), []byte(new), 1)
}

func del(ls [][]byte, i int) [][]byte { return append(ls[:i:i], ls[i+1:]...) }

func insert(ls [][]byte, i int, l []byte) [][]byte {
	out := append(ls[:i:i], append([]byte(nil), l...))
	return append(out, ls[i:]...)
}

// rechain recomputes every prev from line index i on, as a forger who can
// write the file but has no key would.
func rechain(ls [][]byte, i int) [][]byte {
	for k := max(i, 1); k < len(ls); k++ {
		r, err := parseLine(ls[k])
		if err != nil {
			panic(err)
		}
		r.Prev = hexHash(hashLine(ls[k-1]))
		ls[k], _ = r.MarshalJSON()
	}
	return ls
}

func TestVerifyTamper(t *testing.T) {
	otherKey, _ := NewHMAC(HMACKey{ID: "test-1", Key: bytes.Repeat([]byte("x"), 32)})
	otherID, _ := NewHMAC(HMACKey{ID: "test-2", Key: testKey.Key})
	tests := []tamper{
		{name: "change actor", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `"actor":"agent-b"`, `"actor":"agent-c"`)
			return ls
		}, kind: ErrChanged, line: 3, seq: 3},
		{name: "change one byte of a typed field", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[6] = replaceIn(t, ls[6], `"stan":"000004"`, `"stan":"000005"`)
			return ls
		}, kind: ErrChanged, line: 7, seq: 7},
		{name: "change outcome before a checkpoint", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[3] = replaceIn(t, ls[3], `"outcome":"failure"`, `"outcome":"success"`)
			return ls
		}, kind: ErrChanged, line: 4, seq: 4},
		{name: "change masked pan", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[11] = replaceIn(t, ls[11], `411111******1111`, `411111******1112`)
			return ls
		}, kind: ErrChanged, line: 12, seq: 12},
		{name: "change prev", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[6] = replaceIn(t, ls[6], `"prev":"`, `"prev":"0`)
			ls[6] = append(ls[6][:len(ls[6])-3], `"}`...)
			return ls
		}, kind: ErrChanged, line: 7, seq: 7},
		{name: "change first prev", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[0] = replaceIn(t, ls[0], `"prev":"0`, `"prev":"1`)
			return ls
		}, kind: ErrChanged, line: 1, seq: 1},
		{name: "change time", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[1] = replaceIn(t, ls[1], `T19:46:00`, `T19:45:00`)
			return ls
		}, kind: ErrChanged, line: 2, seq: 2},
		{name: "added space", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `,"actor"`, `, "actor"`)
			return ls
		}, kind: ErrChanged, line: 3, seq: 3},
		{name: "extra field", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `,"actor"`, `,"x":1,"actor"`)
			return ls
		}, kind: ErrChanged, line: 3, seq: 3},
		{name: "key in upper case", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `"actor"`, `"Actor"`)
			return ls
		}, kind: ErrChanged, line: 3, seq: 3},
		{name: "duplicate key", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `,"actor":"agent-b"`, `,"actor":"agent-x","actor":"agent-b"`)
			return ls
		}, kind: ErrChanged, line: 3, seq: 3},
		{name: "wrong type", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[2] = replaceIn(t, ls[2], `"seq":3`, `"seq":"3"`)
			return ls
		}, kind: ErrMalformed, line: 3},
		{name: "CRLF", raw: func(b []byte) []byte {
			return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
		}, kind: ErrChanged, line: 1, seq: 1},
		{name: "change seq", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[5] = replaceIn(t, ls[5], `"seq":6,`, `"seq":7,`)
			return ls
		}, kind: ErrRemoved, line: 6, seq: 7},
		{name: "delete a line", edit: func(t *testing.T, ls [][]byte) [][]byte { return del(ls, 5) },
			kind: ErrRemoved, line: 6, seq: 7},
		{name: "delete two lines", edit: func(t *testing.T, ls [][]byte) [][]byte { return del(del(ls, 5), 5) },
			kind: ErrRemoved, line: 6, seq: 8},
		{name: "delete the first line", edit: func(t *testing.T, ls [][]byte) [][]byte { return del(ls, 0) },
			kind: ErrRemoved, line: 1, seq: 2},
		{name: "delete a checkpoint", edit: func(t *testing.T, ls [][]byte) [][]byte { return del(ls, 4) },
			kind: ErrRemoved, line: 5, seq: 6},
		{name: "swap two lines", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[5], ls[6] = ls[6], ls[5]
			return ls
		}, kind: ErrOutOfOrder, line: 6, seq: 7},
		{name: "move a line down", edit: func(t *testing.T, ls [][]byte) [][]byte {
			l := ls[2]
			return insert(del(ls, 2), 7, l)
		}, kind: ErrRemoved, line: 3, seq: 4},
		{name: "insert a copied line", edit: func(t *testing.T, ls [][]byte) [][]byte { return insert(ls, 8, ls[2]) },
			kind: ErrOutOfOrder, line: 9, seq: 3},
		{name: "insert a copy after itself", edit: func(t *testing.T, ls [][]byte) [][]byte { return insert(ls, 3, ls[2]) },
			kind: ErrOutOfOrder, line: 4, seq: 3},
		{name: "insert a forged record", edit: func(t *testing.T, ls [][]byte) [][]byte {
			r, _ := parseLine(ls[6])
			r.Reason = "forged"
			b, _ := r.MarshalJSON()
			return insert(ls, 6, b)
		}, kind: ErrOutOfOrder, line: 7, seq: 7},
		{name: "truncate mid-line at end", raw: func(b []byte) []byte { return b[:len(b)-20] },
			kind: ErrTruncated, line: 13},
		{name: "truncate mid-line", raw: func(b []byte) []byte {
			ls := splitLines(b)
			return append(joinLines(ls[:6]), ls[6][:40]...)
		}, kind: ErrTruncated, line: 7},
		{name: "garbage line", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[3] = []byte("hello")
			return ls
		}, kind: ErrMalformed, line: 4},
		{name: "blank line", edit: func(t *testing.T, ls [][]byte) [][]byte { return insert(ls, 3, nil) },
			kind: ErrMalformed, line: 4},
		{name: "empty file", raw: func(b []byte) []byte { return nil }, kind: ErrEmpty},
		{name: "forged checkpoint signature", edit: func(t *testing.T, ls [][]byte) [][]byte {
			r, _ := parseLine(ls[4])
			r.Sig = strings.Repeat("ab", 32)
			ls[4], _ = r.MarshalJSON()
			return rechain(ls, 5)
		}, kind: ErrBadSignature, line: 5, seq: 5},
		{name: "forged final checkpoint", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[12] = replaceIn(t, ls[12], `"reason":"close"`, `"reason":"clos"`)
			return ls
		}, kind: ErrBadSignature, line: 13, seq: 13},
		{name: "change a record and rechain", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[6] = replaceIn(t, ls[6], `"stan":"000004"`, `"stan":"000009"`)
			return rechain(ls, 7)
		}, kind: ErrBadSignature, line: 10, seq: 10},
		{name: "checkpoint signed with another key", edit: func(t *testing.T, ls [][]byte) [][]byte {
			r, _ := parseLine(ls[9])
			data, _ := signedData(r)
			r.Sig, _, _ = otherKey.Sign(context.Background(), data)
			ls[9], _ = r.MarshalJSON()
			return rechain(ls, 10)
		}, kind: ErrBadSignature, line: 10, seq: 10},
		{name: "wrong key", edit: func(t *testing.T, ls [][]byte) [][]byte { return ls },
			v: otherKey, kind: ErrBadSignature, line: 5, seq: 5},
		{name: "unknown key id", edit: func(t *testing.T, ls [][]byte) [][]byte { return ls },
			v: otherID, kind: ErrUnknownKey, line: 5, seq: 5},
		{name: "change before checkpoint, no key", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[8] = replaceIn(t, ls[8], `"stan":"000006"`, `"stan":"000007"`)
			return ls
		}, noKey: true, kind: ErrChanged, line: 9, seq: 9},
		{name: "forged checkpoint, no key", edit: func(t *testing.T, ls [][]byte) [][]byte {
			ls[4] = replaceIn(t, ls[4], `"sig":"`, `"sig":"0`)
			ls[4] = replaceIn(t, ls[4], `","prev"`, `0","prev"`)
			return ls
		}, noKey: true, kind: ErrChanged, line: 5, seq: 5},
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	writeTrail(t, path, 9, 4)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(orig), testHMAC(t)); err != nil {
		t.Fatalf("intact trail: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b []byte
			if tc.raw != nil {
				b = tc.raw(bytes.Clone(orig))
			} else {
				b = joinLines(tc.edit(t, splitLines(orig)))
			}
			var v Verifier = testHMAC(t)
			if tc.v != nil {
				v = tc.v
			}
			if tc.noKey {
				v = nil
			}
			_, err := Verify(context.Background(), bytes.NewReader(b), v)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify = %v, want a *VerifyError", err)
			}
			if !errors.Is(err, tc.kind) || ve.Line != tc.line || ve.Seq != tc.seq {
				t.Errorf("Verify = %v (line %d, seq %d)\nwant %v at line %d, seq %d", err, ve.Line, ve.Seq, tc.kind, tc.line, tc.seq)
			}
			t.Log(err)
		})
	}
}

func TestVerifyLongLine(t *testing.T) {
	b := append(bytes.Repeat([]byte("a"), 3*MaxLineLen+17), '\n')
	_, err := Verify(context.Background(), bytes.NewReader(b), nil)
	if !errors.Is(err, ErrMalformed) {
		t.Errorf("Verify = %v, want ErrMalformed", err)
	}
	if len(err.Error()) > 200 {
		t.Errorf("error message is %d bytes long", len(err.Error()))
	}
}

func TestConcurrentAppend(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncEveryRecord, SyncOnCheckpoint} {
		t.Run(fmt.Sprint("sync=", policy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			ctx := context.Background()
			w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 37, Sync: policy})
			if err != nil {
				t.Fatal(err)
			}
			const goroutines, each = 16, 60
			seqs := make(chan uint64, goroutines*each)
			var wg sync.WaitGroup
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						seq, err := w.Append(ctx, sample(g*each+i))
						if err != nil {
							t.Error(err)
							return
						}
						seqs <- seq
					}
				})
			}
			wg.Wait()
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			close(seqs)
			seen := map[uint64]bool{}
			for s := range seqs {
				if seen[s] {
					t.Fatalf("seq %d returned twice", s)
				}
				seen[s] = true
			}
			sum, err := verifyFile(t, path, testHMAC(t))
			if err != nil {
				t.Fatal(err)
			}
			n := 1 + goroutines*each
			if want := n + n/37 + 1; sum.Records != want || sum.Checkpoints != n/37+1 {
				t.Errorf("summary %+v, want %d records, %d checkpoints", sum, want, n/37+1)
			}
		})
	}
}

func TestReopenAndContinue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeTrail(t, path, 5, 4)
	w := openTest(t, path, 4)
	if _, err := w.Append(ctx, sample(5)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := w.Append(ctx, sample(6)); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close = %v, want ErrClosed", err)
	}
	sum, err := verifyFile(t, path, testHMAC(t))
	if err != nil {
		t.Fatal(err)
	}
	// started, 5 records with a checkpoint after seq 4, close checkpoint;
	// started, 1 record, close checkpoint.
	if sum.Records != 11 || sum.Checkpoints != 3 {
		t.Errorf("summary %+v", sum)
	}
	var reasons []string
	f, _ := os.Open(path)
	defer f.Close()
	for r, err := range Records(f) {
		if err != nil {
			t.Fatal(err)
		}
		if r.Event == EventAuditStarted {
			reasons = append(reasons, string(r.Reason))
		}
	}
	if strings.Join(reasons, ",") != "created,continued" {
		t.Errorf("audit.started reasons %q", reasons)
	}
}

// crash closes w's file without a final checkpoint, as a killed process
// would leave it.
func crash(t *testing.T, w *Writer) {
	t.Helper()
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	if err := w.f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestReopenAfterCrash(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name         string
		every, count int
	}{
		{"small", 4, 6},
		// No checkpoint in a file bigger than one read-back chunk: the
		// whole file is read and checked.
		{"no checkpoint, many chunks", 1_000_000, 700},
		// The last checkpoint several chunks from the end.
		{"checkpoint far back", 900, 1500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			w := openTest(t, path, tc.every)
			for i := range tc.count {
				if _, err := w.Append(ctx, sample(i)); err != nil {
					t.Fatal(err)
				}
			}
			crash(t, w)
			// A crashed trail verifies as far as it goes, and says it was
			// not closed and how far it is checkpointed.
			sum, err := verifyFile(t, path, testHMAC(t))
			if err != nil {
				t.Fatalf("crashed trail: Verify = %v", err)
			}
			if wantCP := uint64((1 + tc.count) / tc.every * (tc.every + 1)); sum.Closed || sum.LastSeq != uint64(1+tc.count+(1+tc.count)/tc.every) || sum.Checkpointed != wantCP {
				t.Fatalf("crashed trail: summary %+v, want not closed, checkpointed through seq %d", sum, wantCP)
			}
			w = openTest(t, path, tc.every)
			if err := w.Close(ctx); err != nil {
				t.Fatal(err)
			}
			sum, err = verifyFile(t, path, testHMAC(t))
			if err != nil {
				t.Fatal(err)
			}
			n := 1 + tc.count
			want := n + n/tc.every + 1 + 1 // first run, started, close checkpoint
			if n%tc.every+1 >= tc.every {
				want++ // the started record completes an interval
			}
			if sum.Records != want {
				t.Errorf("summary %+v, want %d records", sum, want)
			}
			b, _ := os.ReadFile(path)
			if !bytes.Contains(b, []byte(`"reason":"continued_after_unclean_stop"`)) {
				t.Error("no audit.started record saying the stop was unclean")
			}
		})
	}
}

func TestReopenRefusesBadTail(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		edit func(b []byte) []byte
		opts Options
		kind error
	}{
		{"truncated", func(b []byte) []byte { return b[:len(b)-5] }, Options{}, ErrTruncated},
		{"changed record before the last line", func(b []byte) []byte {
			ls := splitLines(b)
			ls[len(ls)-2] = bytes.Replace(ls[len(ls)-2], []byte(`"stan":"000004"`), []byte(`"stan":"000007"`), 1)
			return joinLines(ls)
		}, Options{}, ErrChanged},
		{"changed last record", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"stan":"000005"`), []byte(`"stan": "000005"`), 1)
		}, Options{}, ErrChanged},
		{"removed record", func(b []byte) []byte {
			ls := splitLines(b)
			return joinLines(del(ls, len(ls)-3))
		}, Options{}, ErrRemoved},
		{"forged last checkpoint", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"reason":"interval"`), []byte(`"reason":"interva"`), 1)
		}, Options{}, ErrBadSignature},
		{"garbage appended", func(b []byte) []byte { return append(b, "garbage\n"...) }, Options{}, ErrMalformed},
		{"other key", func(b []byte) []byte { return b }, Options{Verifier: must(NewHMAC(HMACKey{ID: "test-1", Key: bytes.Repeat([]byte("k"), 32)}))}, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 7 records: seq 1 started, 2-4, checkpoint 5, 6-8 and a
			// crash: the tail after the last checkpoint is 6 to 8.
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			w := openTest(t, path, 4)
			for i := range 6 {
				if _, err := w.Append(ctx, sample(i)); err != nil {
					t.Fatal(err)
				}
			}
			crash(t, w)
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(path, tc.edit(b), 0o600); err != nil {
				t.Fatal(err)
			}
			before, _ := os.ReadFile(path)
			opts := tc.opts
			opts.Signer = testHMAC(t)
			w, err := Open(ctx, path, opts)
			if err == nil {
				w.Close(ctx)
				t.Fatal("Open accepted a bad tail")
			}
			var ve *VerifyError
			if !errors.Is(err, tc.kind) || !errors.As(err, &ve) {
				t.Errorf("Open = %v, want %v", err, tc.kind)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("Open changed a file it refused")
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	writeTrail(t, path, 3, 100)
	k2 := HMACKey{ID: "test-2", Key: bytes.Repeat([]byte("2"), 32)}
	rotated := must(NewHMAC(k2, testKey))
	w, err := Open(ctx, path, Options{Signer: rotated})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := verifyFile(t, path, rotated); err != nil {
		t.Error(err)
	}
	if _, err := verifyFile(t, path, must(NewHMAC(k2))); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("without the old key: %v, want ErrUnknownKey", err)
	}
}

func TestOpenLockAndMode(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	w := openTest(t, path, 10)
	if _, err := Open(ctx, path, Options{Signer: testHMAC(t)}); !errors.Is(err, ErrLocked) {
		t.Errorf("second Open = %v, want ErrLocked", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{Signer: testHMAC(t)}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("Open of a 0666 file = %v", err)
	}
	if _, err := Open(ctx, dir, Options{Signer: testHMAC(t)}); err == nil {
		t.Error("Open of a directory succeeded")
	}
	if _, err := Open(ctx, path, Options{}); err == nil {
		t.Error("Open without a Signer succeeded")
	}
}

func TestRefuseCardData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 1000)
	defer w.Close(ctx)
	base := sample(0)
	type edit func(r *Record)
	var cases []struct {
		name string
		edit edit
	}
	add := func(name string, e edit) {
		cases = append(cases, struct {
			name string
			edit edit
		}{name, e})
	}
	for _, p := range []string{visa, mc, amex, "4111 1111 1111 1111", "5555-5555-5555-4444", "3782 822463 10005"} {
		add("actor "+p, func(r *Record) { r.Actor = "agent " + p })
		add("origin "+p, func(r *Record) { r.Origin = p })
		add("call "+p, func(r *Record) { r.CallID = "c" + p })
		add("call with prefix "+p, func(r *Record) { r.CallID = "c-" + p })
		add("call of digits "+p, func(r *Record) { r.CallID = p })
		add("payment "+p, func(r *Record) { r.PaymentID = p + "@x" })
		add("reason "+p, func(r *Record) { r.Reason = Reason("customer said " + p + " twice") })
		add("reason code "+p, func(r *Record) { r.Reason = Reason(p) })
		add("masked "+p, func(r *Record) { r.MaskedPAN = p })
		add("field "+p, func(r *Record) { r.Field = p })
		add("state "+p, func(r *Record) { r.State = "x" + p })
		add("trunk "+p, func(r *Record) { r.Trunk = p })
		add("method "+p, func(r *Record) { r.Method = "GET" + p })
		add("route "+p, func(r *Record) { r.Route = "GET /v1/payments/" + p })
		add("version "+p, func(r *Record) { r.Version = "v" + p })
		add("version pre-release "+p, func(r *Record) { r.Version = "v1.0.0-" + p })
		add("version build "+p, func(r *Record) { r.Version = "v1.0.0+" + p })
		add("stan "+p, func(r *Record) { r.STAN = p })
		add("response code "+p, func(r *Record) { r.ResponseCode = p })
		add("event "+p, func(r *Record) { r.Event = Event(p) })
	}
	for _, m := range []string{"41111111****1111", "4111111111******", "411111******11111", "411111*****1111x", "411111-*****-1111", "4111111111111112", "****", "411111 ****** 1111"} {
		add("masked "+m, func(r *Record) { r.MaskedPAN = m })
	}
	for _, tc := range cases {
		r := base
		tc.edit(&r)
		seq, err := w.Append(ctx, r)
		if !errors.Is(err, ErrCardData) {
			t.Errorf("%s: Append = %d, %v; want ErrCardData", tc.name, seq, err)
			continue
		}
		for _, p := range []string{visa, mc, amex, "4111 1111", "1111 1111", "41111111"} {
			if strings.Contains(err.Error(), p) {
				t.Errorf("%s: error %q shows card digits", tc.name, err)
			}
		}
	}
	// Allowed: masked numbers, and digit runs that are not card numbers.
	for _, r := range []Record{
		{Actor: "a", Event: EventFieldCompleted, Outcome: Success, MaskedPAN: "411111******1111"},
		{Actor: "a", Event: EventFieldCompleted, Outcome: Success, MaskedPAN: "************4444"},
		{Actor: "a", Event: EventFieldCompleted, Outcome: Success, MaskedPAN: "378282*****0005"},
		{Actor: "a", Event: EventFieldCompleted, Outcome: Success, MaskedPAN: "5555**********"},
		{Actor: "caller +44 20 7946 0958, order 2024-000123-4567, ref 4111111111111112", Event: EventSessionStarted, Outcome: Success},
	} {
		if _, err := w.Append(ctx, r); err != nil {
			t.Errorf("Append(%+v) = %v", r, err)
		}
	}
	b, _ := os.ReadFile(path)
	for _, p := range []string{visa, mc, amex, "1111 1111", "5555-5555"} {
		if bytes.Contains(b, []byte(p)) {
			t.Errorf("card digits %q written", p)
		}
	}
	if _, err := verifyFileAfterClose(t, w, path); err != nil {
		t.Error(err)
	}
}

func verifyFileAfterClose(t *testing.T, w *Writer, path string) (Summary, error) {
	t.Helper()
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return verifyFile(t, path, testHMAC(t))
}

func TestAppendRefusesBadRecords(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 1000)
	for name, r := range map[string]Record{
		"unknown event":   {Actor: "a", Event: "card.read", Outcome: Success},
		"reserved event":  {Actor: "a", Event: EventAuditCheckpoint, Outcome: Info},
		"reserved start":  {Actor: "a", Event: EventAuditStarted, Outcome: Info},
		"bad outcome":     {Actor: "a", Event: EventFieldReset, Outcome: "ok"},
		"no actor":        {Event: EventFieldReset, Outcome: Info},
		"seq set":         {Seq: 9, Actor: "a", Event: EventFieldReset, Outcome: Info},
		"time set":        {Time: time.Now(), Actor: "a", Event: EventFieldReset, Outcome: Info},
		"sig set":         {Sig: "x", Actor: "a", Event: EventFieldReset, Outcome: Info},
		"unknown reason":  {Actor: "a", Event: EventFieldReset, Outcome: Info, Reason: "because"},
		"free reason":     {Actor: "a", Event: EventFieldFailed, Outcome: Failure, Reason: "expiry: in the past"},
		"long actor":      {Actor: strings.Repeat("a", MaxFieldLen+1), Event: EventFieldReset, Outcome: Info},
		"bad utf-8":       {Actor: "a\xff", Event: EventFieldReset, Outcome: Info},
		"empty event":     {Actor: "a", Outcome: Info},
		"empty outcome":   {Actor: "a", Event: EventFieldReset},
		"long payment id": {Actor: "a", Event: EventFieldReset, Outcome: Info, PaymentID: strings.Repeat("p", MaxIDLen+1)},
		"bad call id":     {Actor: "a", Event: EventFieldReset, Outcome: Info, CallID: "C-1"},
		"bad field":       {Actor: "a", Event: EventFieldReset, Outcome: Info, Field: "Card number"},
		"bad state":       {Actor: "a", Event: EventSessionEnded, Outcome: Info, State: "ended!"},
		"bad trunk":       {Actor: "a", Event: EventSIPCallStarted, Outcome: Info, Trunk: "pbx"},
		"bad method":      {Actor: "a", Event: EventSIPPeerRefused, Outcome: Info, Method: "invite"},
		"bad status":      {Actor: "a", Event: EventSIPCallEnded, Outcome: Info, Status: 99},
		"bad route":       {Actor: "a", Event: EventAPIAuthFailed, Outcome: Info, Route: "/v1/payments/p-1"},
		"bad digest":      {Actor: "a", Event: EventConfigLoaded, Outcome: Info, Digest: strings.Repeat("AB", 32)},
		"bad version":     {Actor: "a", Event: EventServiceStarted, Outcome: Info, Version: "1.4.0"},
		"bad stan":        {Actor: "a", Event: EventAuthorizationReversed, Outcome: Info, STAN: "12345"},
		"bad code":        {Actor: "a", Event: EventAuthorizationResult, Outcome: Info, ResponseCode: "5"},
	} {
		if _, err := w.Append(ctx, r); err == nil {
			t.Errorf("%s: Append accepted %+v", name, r)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	// Longest fields everywhere still fit on a line.
	long := Record{
		Actor: strings.Repeat("\u00e9", MaxFieldLen/2), Origin: strings.Repeat("<", MaxFieldLen),
		CallID: "c" + strings.Repeat("-", MaxIDLen-1), PaymentID: "p" + strings.Repeat("_", MaxIDLen-1),
		Event: EventFieldFailed, Outcome: Failure, Reason: ReasonContinuedUnclean,
		MaskedPAN: "411111*********1111",
		Field:     strings.Repeat("f", 32), State: strings.Repeat("s", 32), Trunk: "platform", Method: strings.Repeat("M", 32),
		Status: 699, Route: "DELETE /" + strings.Repeat("a", 120), Digest: strings.Repeat("f", 64),
		Version: "v1.0.0-" + strings.Repeat("x", 121), STAN: "999999", ResponseCode: "ZZ", ExpiresAt: time.Now(),
	}
	if _, err := w.Append(ctx, long); err != nil {
		t.Errorf("longest record: %v", err)
	}
	sum, err := verifyFileAfterClose(t, w, path)
	if err != nil || sum.Records != 3 {
		t.Errorf("Verify = %+v, %v; want 3 records", sum, err)
	}
}

// flakySigner fails while fail is set.
type flakySigner struct {
	*HMAC
	mu   sync.Mutex
	fail bool
}

func (s *flakySigner) Sign(ctx context.Context, data []byte) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return "", "", errors.New("vault unreachable")
	}
	return s.HMAC.Sign(ctx, data)
}

func TestCheckpointSignFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	s := &flakySigner{HMAC: testHMAC(t)}
	w, err := Open(ctx, path, Options{Signer: s, CheckpointEvery: 2})
	if err != nil {
		t.Fatal(err)
	}
	s.fail = true
	seq, err := w.Append(ctx, sample(0))
	if seq != 2 || !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("Append = %d, %v; want 2, ErrCheckpoint", seq, err)
	}
	seq, err = w.Append(ctx, sample(1))
	if seq != 3 || !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("Append = %d, %v; want 3, ErrCheckpoint", seq, err)
	}
	s.fail = false
	if seq, err := w.Append(ctx, sample(2)); seq != 4 || err != nil {
		t.Fatalf("Append = %d, %v; want 4, nil", seq, err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err := verifyFile(t, path, s.HMAC)
	if err != nil || sum.Records != 6 || sum.Checkpoints != 2 {
		t.Errorf("Verify = %+v, %v", sum, err)
	}
}

func TestCheckpointRequested(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 1000)
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err := verifyFileAfterClose(t, w, path)
	if err != nil || sum.Checkpoints != 2 {
		t.Errorf("Verify = %+v, %v", sum, err)
	}
	if err := w.Checkpoint(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Checkpoint after Close = %v", err)
	}
}

func TestHMAC(t *testing.T) {
	if _, err := NewHMAC(HMACKey{ID: "k", Key: []byte("short")}); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewHMAC(HMACKey{ID: "a b", Key: testKey.Key}); err == nil {
		t.Error("key id with a space accepted")
	}
	if _, err := NewHMAC(testKey, testKey); err == nil {
		t.Error("duplicate key id accepted")
	}
	h := testHMAC(t)
	ctx := context.Background()
	sig, id, err := h.Sign(ctx, []byte("data"))
	if err != nil || id != "test-1" || len(sig) != 64 {
		t.Fatalf("Sign = %q, %q, %v", sig, id, err)
	}
	if err := h.Verify(ctx, []byte("data"), sig, id); err != nil {
		t.Error(err)
	}
	if err := h.Verify(ctx, []byte("datb"), sig, id); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify(changed data) = %v", err)
	}
	if err := h.Verify(ctx, []byte("data"), "zz", id); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify(bad hex) = %v", err)
	}
	if err := h.Verify(ctx, []byte("data"), sig, "nope"); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Verify(unknown key) = %v", err)
	}

	dir := t.TempDir()
	kf := filepath.Join(dir, "key")
	os.WriteFile(kf, append(bytes.Repeat([]byte("k"), 32), '\n'), 0o600)
	if k, err := LoadHMACKey(kf); err != nil || len(k) != 33 {
		t.Errorf("LoadHMACKey = %d bytes, %v", len(k), err)
	}
	os.WriteFile(kf, []byte("short\n"), 0o600)
	if _, err := LoadHMACKey(kf); err == nil {
		t.Error("short key file accepted")
	}
}

func TestEvents(t *testing.T) {
	seen := map[Event]bool{}
	for _, e := range Events() {
		if seen[e] {
			t.Errorf("%s listed twice", e)
		}
		seen[e] = true
		area, what, ok := strings.Cut(string(e), ".")
		if !ok || area == "" || what == "" || strings.ToLower(string(e)) != string(e) {
			t.Errorf("event %q is not area.what in lower case", e)
		}
		if !e.Known() {
			t.Errorf("%s not Known", e)
		}
	}
	for _, want := range []Event{"session.started", "session.ended", "field.completed", "field.reset", "field.failed",
		"tokenization.requested", "tokenization.result", "authorization.requested", "authorization.result",
		"api.auth_failed", "sip.peer_refused", "masking.failed", "config.loaded", "audit.checkpoint", "call.failed"} {
		if !seen[want] {
			t.Errorf("event %s missing", want)
		}
	}
}

func TestWriteFailureStopsWriter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 1000)
	w.f.Close() // every write now fails
	_, err := w.Append(ctx, sample(0))
	if err == nil || !strings.Contains(err.Error(), "writer stopped") {
		t.Fatalf("Append = %v, want a write failure", err)
	}
	if _, err2 := w.Append(ctx, sample(1)); err2 != err {
		t.Errorf("second Append = %v, want the same error %v", err2, err)
	}
	if err := w.Checkpoint(ctx); err == nil {
		t.Error("Checkpoint after a failure succeeded")
	}
	if err := w.Close(ctx); err == nil {
		t.Error("Close after a failure returned nil")
	}
}

func TestCloseWhileAppending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := w.Append(ctx, sample(g+i))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(20 * time.Millisecond)
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	sum, err := verifyFile(t, path, testHMAC(t))
	if err != nil || sum.Records < 2 {
		t.Errorf("Verify = %+v, %v", sum, err)
	}
}

// TestCallFailedRecord: a call.failed record with its fault's reason is
// written and verifies; one with a reason outside the closed set is not.
func TestCallFailedRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w := openTest(t, path, 1000)
	for _, r := range []Reason{ReasonMediaFault, ReasonRingFailed, ReasonSIPFault} {
		if _, err := w.Append(ctx, Record{Actor: "system", CallID: "c-fault1", Event: EventCallFailed, Outcome: Failure, Reason: r, Trunk: "carrier"}); err != nil {
			t.Errorf("call.failed %s: %v", r, err)
		}
	}
	if _, err := w.Append(ctx, Record{Actor: "system", CallID: "c-fault1", Event: EventCallFailed, Outcome: Failure, Reason: "panic: index out of range"}); err == nil {
		t.Error("call.failed with free text as its reason was written")
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if sum, err := Verify(ctx, f, testHMAC(t)); err != nil {
		t.Fatalf("Verify: %v", err)
	} else if sum.Records < 4 {
		t.Errorf("Verify: %d records, want the three call.failed among them", sum.Records)
	}
}

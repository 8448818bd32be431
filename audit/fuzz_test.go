package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerify: whatever the bytes, Verify, Records and Query return an
// answer and never panic; a trail that verifies can be continued.
// Seeds: testdata/fuzz/FuzzVerify (the example trail, broken copies of
// it, and the example as versions before reason codes wrote it), written
// by 'go test ./audit -run TestExampleFile -update'.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\n"))
	f.Add([]byte(`{"seq":1}` + "\n"))
	v := must(NewHMAC(exampleKey))
	ctx := context.Background()
	fsync = func(*os.File) error { return nil } // the files are thrown away
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		sum, err := Verify(ctx, bytes.NewReader(data), v)
		lines := bytes.Count(data, []byte("\n"))
		var ve *VerifyError
		switch {
		case err == nil:
			if sum.Records != lines || int(sum.LastSeq) != sum.Records || sum.Checkpointed > sum.LastSeq ||
				(sum.Checkpoints == 0) != (sum.Checkpointed == 0) || sum.Closed && sum.Checkpointed != sum.LastSeq {
				t.Fatalf("Verify passed with %+v for %d lines", sum, lines)
			}
		case errors.As(err, &ve):
			if ve.Line > lines+1 || ve.Err == nil {
				t.Fatalf("VerifyError %+v for %d lines", ve, lines)
			}
			_ = ve.Error()
		default:
			t.Fatalf("Verify of a bytes.Reader: %v", err)
		}
		n, qerr := Query(bytes.NewReader(data), Filter{}, io.Discard, CSV)
		if err == nil && (qerr != nil || n != sum.Records) {
			t.Fatalf("Query of a verified trail = %d, %v", n, qerr)
		}
		for range Records(bytes.NewReader(data)) {
		}

		// Continue the file: Open must decide without panicking, and must
		// accept (and keep valid) a trail that verifies.
		path := filepath.Join(dir, "a.jsonl")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(path)
		w, oerr := Open(ctx, path, Options{Signer: v})
		if err == nil && oerr != nil {
			t.Fatalf("Open refused a trail that verifies: %v", oerr)
		}
		if oerr != nil {
			return
		}
		if cerr := w.Close(ctx); cerr != nil {
			t.Fatal(cerr)
		}
		if err == nil {
			f, _ := os.Open(path)
			defer f.Close()
			if _, err := Verify(ctx, f, v); err != nil {
				t.Fatalf("continued trail: %v", err)
			}
		}
	})
}

// writeFuzzSeeds writes FuzzVerify's seed corpus from the example trail.
func writeFuzzSeeds(t *testing.T, example []byte) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ls := splitLines(example)
	swapped := splitLines(example)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	changed := bytes.Replace(example, []byte("expiry"), []byte("expirx"), 1)
	old, err := os.ReadFile(oldExample)
	if err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{
		"v0-intact":   old,
		"v0-changed":  bytes.Replace(old, []byte("in the past"), []byte("in the futur"), 1),
		"intact":      example,
		"truncated":   example[:len(example)-30],
		"swapped":     joinLines(swapped),
		"deleted":     joinLines(del(splitLines(example), 5)),
		"changed":     changed,
		"no-final":    joinLines(ls[:len(ls)-1]),
		"one-started": joinLines(ls[:1]),
		"crlf":        bytes.ReplaceAll(example, []byte("\n"), []byte("\r\n")),
	}
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

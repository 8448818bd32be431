package audit

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tonevault/tonevault/internal/testutil"
)

// TestRecoverDiskFull: on a file system that fills up, Append fails and
// the Writer stops; Recover does nothing useful until space is freed, then
// the trail goes on from its last whole record and verifies.
func TestRecoverDiskFull(t *testing.T) {
	ctx := context.Background()
	dir := testutil.SmallFS(t, 64<<10)
	path := filepath.Join(dir, "audit.jsonl")
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	filler := testutil.Fill(t, dir)
	var failed error
	written := 0
	for i := 0; i < 200 && failed == nil; i++ {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			failed = err
		} else {
			written++
		}
	}
	if !diskFull(failed) || !w.stopped() {
		t.Fatalf("Append on a full file system: %v (stopped %v), want ENOSPC and a stopped Writer", failed, w.stopped())
	}
	if _, err := w.Append(ctx, sample(0)); err == nil {
		t.Fatal("Append after the failure succeeded without Recover")
	}
	// Still full: Recover cuts back, but writing fails again.
	if err := w.Recover(ctx); err != nil {
		t.Fatalf("Recover on a full file system: %v", err)
	}
	if _, err := w.Append(ctx, sample(0)); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Append, still full = %v, want ENOSPC", err)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := w.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	seq, err := w.Append(ctx, sample(1))
	if err != nil || seq != uint64(written)+2 {
		t.Fatalf("Append after Recover = %d, %v; want seq %d", seq, err, written+2)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	sum, err := verifyFile(t, path, testHMAC(t))
	if err != nil || sum.LastSeq != seq+1 || !sum.Closed {
		t.Fatalf("Verify = %+v, %v", sum, err)
	}
}

// TestRecoverAfterFsyncFailure: after a failed fsync, what was written
// since the last good one is in doubt: Recover cuts it off, and the
// record whose Append failed is written again by its caller, once.
func TestRecoverAfterFsyncFailure(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := os.ReadFile(path)
	real := fsync
	defer func() { fsync = real }()
	fsync = func(*os.File) error { return syscall.EIO }
	if _, err := w.Append(ctx, sample(3)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with a failing fsync = %v", err)
	}
	if err := w.Recover(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Recover while fsync fails = %v, want EIO", err)
	}
	fsync = real
	if err := w.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatalf("after Recover the file is %d bytes, want the %d it had at the last good fsync", len(after), len(before))
	}
	if seq, err := w.Append(ctx, sample(3)); err != nil || seq != 5 {
		t.Fatalf("Append again = %d, %v; want seq 5", seq, err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	n := 0
	for r, err := range Records(mustOpen(t, path)) {
		if err != nil {
			t.Fatal(err)
		}
		if r.STAN == sample(3).STAN {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the record whose fsync failed is in the trail %d times, want 1", n)
	}
	if _, err := verifyFile(t, path, testHMAC(t)); err != nil {
		t.Fatal(err)
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

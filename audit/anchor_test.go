package audit

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// writeAnchored writes a trail of n samples with a checkpoint every
// `every` records, each anchored in a FileAnchor beside it, and closes it.
// It returns the anchor and, for each checkpoint, the trail's bytes up to
// and including it.
func writeAnchored(t *testing.T, dir string, n, every int, now func() time.Time) (path string, a *FileAnchor, upTo map[uint64][]byte) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(dir, "audit.jsonl")
	a = &FileAnchor{Path: filepath.Join(dir, "anchor", "audit.anchor")}
	if err := os.Mkdir(filepath.Dir(a.Path), 0o700); err != nil {
		t.Fatal(err)
	}
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: every, Now: now, Anchor: a})
	if err != nil {
		t.Fatal(err)
	}
	upTo = map[uint64][]byte{}
	for i := range n {
		seq, err := w.Append(ctx, sample(i))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); bytes.HasSuffix(b, []byte("}\n")) && bytes.Contains(splitLines(b)[len(splitLines(b))-1], checkpointMark) {
			upTo[seq+1] = b
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return path, a, upTo
}

func verifyAnchored(t *testing.T, b []byte, a Anchor) (Summary, error) {
	t.Helper()
	return VerifyAnchored(context.Background(), bytes.NewReader(b), testHMAC(t), a)
}

// TestVerifyAnchoredCuts: a trail cut right after a checkpoint still
// verifies on its own (the control: what Verify cannot see), and fails
// against the anchor.
func TestVerifyAnchoredCuts(t *testing.T) {
	dir := t.TempDir()
	// seq 1 started; a checkpoint after every 3 records: seq 4, 8, 12;
	// 13 and 14 records, 15 the close checkpoint.
	path, a, upTo := writeAnchored(t, dir, 10, 3, clock())
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := verifyAnchored(t, whole, a)
	if err != nil || !sum.Closed || sum.LastSeq != 15 || sum.Anchored != 15 || sum.Checkpointed != 15 {
		t.Fatalf("whole trail: %+v, %v; want closed, anchored through seq 15", sum, err)
	}
	ls := splitLines(whole)
	otherDir := t.TempDir()
	later := clock()
	later() // another trail starts at another time
	other, _, _ := writeAnchored(t, otherDir, 10, 3, later)
	otherTrail, _ := os.ReadFile(other)

	for _, tc := range []struct {
		name string
		b    []byte
		kind error
		seq  uint64
	}{
		{"cut after an interval checkpoint", joinLines(ls[:8]), ErrCut, 15},
		{"last line cut", joinLines(ls[:14]), ErrCut, 15},
		{"replaced by an older copy", upTo[4], ErrCut, 15},
		{"replaced by another trail", otherTrail, ErrNotAnchored, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := Verify(context.Background(), bytes.NewReader(tc.b), testHMAC(t))
			if err != nil {
				t.Fatalf("control: the damaged trail should verify without its anchor, got %v", err)
			}
			_ = sum
			_, err = verifyAnchored(t, tc.b, a)
			var ve *VerifyError
			if !errors.As(err, &ve) || !errors.Is(err, tc.kind) || ve.Seq != tc.seq {
				t.Fatalf("VerifyAnchored = %v, want %v at seq %d", err, tc.kind, tc.seq)
			}
			if tc.kind == ErrCut && !strings.Contains(err.Error(), "the trail ends at seq") {
				t.Errorf("message %q does not say where the trail ends", err)
			}
		})
	}
}

// TestVerifyAnchoredRewrite: someone holding the signing key rewrites a
// record and signs every checkpoint again; the trail verifies, but its
// anchored checkpoints no longer match.
func TestVerifyAnchoredRewrite(t *testing.T) {
	dir := t.TempDir()
	path, a, _ := writeAnchored(t, dir, 10, 3, clock())
	b, _ := os.ReadFile(path)
	ls := splitLines(b)
	ls[2] = replaceIn(t, ls[2], `"actor":"agent-b"`, `"actor":"agent-x"`)
	h := testHMAC(t)
	for k := 3; k < len(ls); k++ {
		r, err := parseLine(ls[k])
		if err != nil {
			t.Fatal(err)
		}
		r.Prev = hexHash(hashLine(ls[k-1]))
		if r.Event == EventAuditCheckpoint {
			data, _ := signedData(r)
			r.Sig, _, _ = h.Sign(context.Background(), data)
		}
		ls[k], _ = r.MarshalJSON()
	}
	forged := joinLines(ls)
	if _, err := Verify(context.Background(), bytes.NewReader(forged), h); err != nil {
		t.Fatalf("control: the re-signed trail should verify without its anchor, got %v", err)
	}
	_, err := verifyAnchored(t, forged, a)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Err != ErrAnchorMismatch || ve.Seq != 4 || ve.Line != 4 {
		t.Fatalf("VerifyAnchored = %v, want ErrAnchorMismatch at the first anchored checkpoint (seq 4)", err)
	}
}

// TestVerifyLiveTrail: a trail being written verifies and says how far it
// is checkpointed and anchored.
func TestVerifyLiveTrail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	a := &FileAnchor{Path: filepath.Join(dir, "audit.anchor")}
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 4, Anchor: a})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	for i := range 6 { // checkpoint at seq 5; 6 and 7 after it
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	sum, err := verifyAnchored(t, b, a)
	if err != nil || sum.Closed || sum.LastSeq != 8 || sum.Checkpointed != 5 || sum.Anchored != 5 {
		t.Fatalf("live trail: %+v, %v; want 8 records, checkpointed and anchored through seq 5, not closed", sum, err)
	}
	if w.TrailID() != sum.TrailID {
		t.Errorf("Writer.TrailID %s, Verify's %s", w.TrailID(), sum.TrailID)
	}
}

func TestFileAnchor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a := &FileAnchor{Path: filepath.Join(dir, "a.anchor")}
	tr1, tr2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	at := time.Date(2025, 11, 23, 19, 46, 1, 5, time.UTC)
	for _, p := range []AnchorPoint{
		{Trail: tr1, Seq: 5, Hash: strings.Repeat("a", 64), Time: at},
		{Trail: tr2, Seq: 3, Hash: strings.Repeat("b", 64), Time: at},
		{Trail: tr1, Seq: 9, Hash: strings.Repeat("c", 64), Time: at},
	} {
		if err := a.Put(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := a.Points(ctx, tr1)
	if err != nil || len(got) != 2 || got[0].Seq != 5 || got[1].Seq != 9 || !got[1].Time.Equal(at) || got[1].Hash != strings.Repeat("c", 64) {
		t.Fatalf("Points = %+v, %v", got, err)
	}
	if err := a.Put(ctx, AnchorPoint{Trail: "x", Seq: 1, Hash: strings.Repeat("a", 64)}); err == nil {
		t.Error("Put of a point with a bad trail id succeeded")
	}
	// A Put cut short by a crash is left out; a bad whole line is an error.
	f, _ := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"trail":"` + tr1 + `","seq":12`)
	f.Close()
	if got, err := a.Points(ctx, tr1); err != nil || len(got) != 2 {
		t.Errorf("Points with a partial last line = %+v, %v", got, err)
	}
	f, _ = os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("\n")
	f.Close()
	if _, err := a.Points(ctx, tr1); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("Points with a bad line = %v, want an error naming line 4", err)
	}
	os.Chmod(a.Path, 0o622)
	if err := a.Put(ctx, AnchorPoint{Trail: tr1, Seq: 13, Hash: strings.Repeat("d", 64), Time: at}); err == nil {
		t.Error("Put into a group-writable anchor file succeeded")
	}
}

// mapKV is a KV in memory.
type mapKV struct {
	mu   sync.Mutex
	m    map[string]map[string]any
	fail error
}

func (k *mapKV) Put(_ context.Context, key string, data map[string]any) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return k.fail
	}
	if k.m == nil {
		k.m = map[string]map[string]any{}
	}
	k.m[key] = data
	return nil
}

func (k *mapKV) Get(_ context.Context, key string) (map[string]any, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fail != nil {
		return nil, k.fail
	}
	return k.m[key], nil
}

func (k *mapKV) setFail(err error) {
	k.mu.Lock()
	k.fail = err
	k.mu.Unlock()
}

func TestKVAnchor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	kv := &mapKV{}
	a := KVAnchor{KV: kv, Prefix: "tonevault/audit-anchor"}
	w, err := Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 3, Anchor: a})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The anchor fails: the checkpoint is written, the Append says so.
	// seq 1 started, 2-3, checkpoint 4, 5-7, checkpoint 8; 9 and 10, and
	// the third record after them brings a checkpoint.
	kv.setFail(errors.New("vault sealed"))
	for i := 5; i < 7; i++ {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Append(ctx, sample(7)); !errors.Is(err, ErrAnchor) || !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("Append with the anchor down = %v, want ErrCheckpoint and ErrAnchor", err)
	}
	if !w.anchorBehind() {
		t.Error("anchorBehind = false after a failed anchoring")
	}
	kv.setFail(nil)
	if err := w.Anchor(ctx); err != nil || w.anchorBehind() {
		t.Fatalf("Anchor = %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	sum, err := verifyAnchored(t, b, a)
	if err != nil || sum.Anchored != sum.LastSeq {
		t.Fatalf("VerifyAnchored = %+v, %v", sum, err)
	}
	if _, ok := kv.m["tonevault/audit-anchor/"+sum.TrailID]; !ok || len(kv.m) != 1 {
		t.Errorf("keys %v, want one under the trail id", kv.m)
	}
	// The last line cut: the KV's one point shows it.
	if _, err := verifyAnchored(t, joinLines(splitLines(b)[:len(splitLines(b))-1]), a); !errors.Is(err, ErrCut) {
		t.Errorf("cut trail: %v, want ErrCut", err)
	}
}

// TestOpenChecksAnchor: a trail whose end was cut off is not continued:
// with an Anchor that keeps only the last checkpoint, continuing it would
// overwrite the evidence. Open refuses it when the anchor can be read;
// when it cannot, every anchoring fails until the trail is moved aside.
// An intact trail is continued (the control).
// TestFileAnchorAfterKill: a gateway killed before its first checkpoint
// leaves a trail and no anchor file; the next one continues the trail and
// anchors its checkpoints, creating the file.
func TestFileAnchorAfterKill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path, anchor := filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "audit.anchor")
	open := func() *Writer {
		w, err := Open(ctx, path, Options{Signer: testHMAC(t), Anchor: &FileAnchor{Path: anchor}})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := open()
	if _, err := w.Append(ctx, sample(0)); err != nil {
		t.Fatal(err)
	}
	w.f.Close() // killed: no checkpoint, nothing anchored
	if _, err := os.Stat(anchor); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("anchor file before any checkpoint: %v", err)
	}
	w = open()
	if err := w.Checkpoint(ctx); err != nil {
		t.Fatalf("Checkpoint after the restart: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := VerifyAnchored(ctx, f, testHMAC(t), &FileAnchor{Path: anchor}); err != nil {
		t.Errorf("VerifyAnchored after the restart: %v", err)
	}
}

func TestOpenChecksAnchor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	kv := &mapKV{}
	a := KVAnchor{KV: kv, Prefix: "p"}
	open := func() (*Writer, error) {
		return Open(ctx, path, Options{Signer: testHMAC(t), CheckpointEvery: 3, Anchor: a})
	}
	w, err := open()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := w.Append(ctx, sample(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The control: intact, it is continued.
	if w, err = open(); err != nil {
		t.Fatalf("Open of an intact trail: %v", err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	ls := splitLines(b)
	cut := joinLines(ls[:8]) // seq 8 is an interval checkpoint; the anchor holds a later one
	if err := os.WriteFile(path, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := open(); !errors.Is(err, ErrCut) {
		t.Fatalf("Open of a cut trail = %v, want ErrCut", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, cut) {
		t.Error("the refused trail was changed")
	}

	// The anchor cannot be read at Open: the trail opens, but nothing is
	// anchored, even once the anchor is back.
	kv.setFail(errors.New("vault sealed"))
	w, err = open()
	if err != nil {
		t.Fatalf("Open with the anchor unreadable: %v", err)
	}
	defer w.Close(ctx)
	kv.setFail(nil)
	if err := w.Checkpoint(ctx); !errors.Is(err, ErrAnchor) || !errors.Is(err, ErrCut) {
		t.Fatalf("Checkpoint of a cut trail = %v, want ErrAnchor and ErrCut", err)
	}
	if err := w.Anchor(ctx); !errors.Is(err, ErrCut) {
		t.Fatalf("Anchor again = %v, want ErrCut still", err)
	}
}

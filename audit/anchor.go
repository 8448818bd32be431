package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// AnchorPoint is a checkpoint as kept outside the trail: enough to find
// it in the trail again and to see that it is the same line.
type AnchorPoint struct {
	Trail string    // the trail's TrailID: hex SHA-256 of its first line
	Seq   uint64    // the checkpoint's seq
	Hash  string    // hex SHA-256 of the checkpoint's line: the next record's prev
	Time  time.Time // the checkpoint's time
}

// Anchor keeps checkpoints where whoever can rewrite the trail cannot:
// Vault KV (KVAnchor), or an append-only file on another file system or
// host (FileAnchor). The Writer puts each checkpoint once it is on disk,
// in seq order; VerifyAnchored reads them back.
type Anchor interface {
	Put(ctx context.Context, p AnchorPoint) error
	// Points returns what is anchored for the trail with this TrailID,
	// in seq order (only the last one, for an Anchor that keeps no
	// history), or none.
	Points(ctx context.Context, trail string) ([]AnchorPoint, error)
}

func (p AnchorPoint) check() error {
	if !isHash(p.Trail) || !isHash(p.Hash) || p.Seq == 0 {
		return errors.New("want a trail id, a seq and a hash")
	}
	return nil
}

// anchorLine is one line of a FileAnchor.
type anchorLine struct {
	Trail string `json:"trail"`
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	Time  string `json:"time"`
}

// FileAnchor keeps every checkpoint as a JSON line appended to a file,
// made durable before Put returns:
//
//	{"trail":"<64 hex>","seq":1042,"hash":"<64 hex>","time":"2025-11-23T19:46:01.123456789Z"}
//
// The file belongs on another path than the trail, ideally another file
// system or host, append-only for the gateway (chattr +a, a WORM mount):
// it proves nothing that the hand that cuts the trail can cut too.
type FileAnchor struct {
	Path string

	mu      sync.Mutex
	created bool
}

// Put implements Anchor.
func (a *FileAnchor) Put(_ context.Context, p AnchorPoint) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("audit: anchor: %w", err)
	}
	b, err := json.Marshal(anchorLine{Trail: p.Trail, Seq: p.Seq, Hash: p.Hash, Time: p.Time.UTC().Format(TimeLayout)})
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := os.OpenFile(a.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: anchor: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return fmt.Errorf("audit: anchor: %w", err)
	} else if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("audit: anchor: %s is not a regular file writable by its owner only", a.Path)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("audit: anchor: %w", err)
	}
	if err := fsync(f); err != nil {
		return fmt.Errorf("audit: anchor: fsync: %w", err)
	}
	if !a.created {
		// The file may be new: its name must survive a crash too.
		if err := syncDir(filepath.Dir(a.Path)); err != nil {
			return fmt.Errorf("audit: anchor: %w", err)
		}
		a.created = true
	}
	return nil
}

// Points implements Anchor. A last line without its newline (a Put cut
// short by a crash) is left out; any other line that is not an anchor is
// an error naming its line number. No file is no points: the file is made
// by the first Put, and a gateway killed before its first checkpoint
// leaves none. (`tonevault audit verify --anchor-file` still requires the
// file it is given to exist.)
func (a *FileAnchor) Points(_ context.Context, trail string) ([]AnchorPoint, error) {
	f, err := os.Open(a.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: anchor: %w", err)
	}
	defer f.Close()
	return readAnchorLines(f, trail, a.Path)
}

func readAnchorLines(r io.Reader, trail, name string) ([]AnchorPoint, error) {
	var out []AnchorPoint
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // a last line without newline: a Put that did not finish
		}
		if err != nil {
			return nil, fmt.Errorf("audit: anchor %s: %w", name, err)
		}
		var l anchorLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return nil, fmt.Errorf("audit: anchor %s: line %d: %s", name, n, jsonErr(err))
		}
		t, err := time.Parse(TimeLayout, l.Time)
		p := AnchorPoint{Trail: l.Trail, Seq: l.Seq, Hash: l.Hash, Time: t}
		if err != nil || p.check() != nil {
			return nil, fmt.Errorf("audit: anchor %s: line %d: not an anchored checkpoint", name, n)
		}
		if p.Trail == trail {
			out = append(out, p)
		}
	}
}

// KV is a key-value store for KVAnchor: Vault KV v2 in the gateway.
type KV interface {
	Put(ctx context.Context, key string, data map[string]any) error
	// Get returns nil and no error when the key does not exist.
	Get(ctx context.Context, key string) (map[string]any, error)
}

// KVAnchor keeps the last checkpoint of each trail under Prefix + "/" +
// its TrailID in a KV store. Vault KV v2 keeps earlier versions as its
// mount allows; the check needs only the last.
type KVAnchor struct {
	KV     KV
	Prefix string // e.g. "tonevault/audit-anchor"
}

func (a KVAnchor) key(trail string) string { return a.Prefix + "/" + trail }

// Put implements Anchor.
func (a KVAnchor) Put(ctx context.Context, p AnchorPoint) error {
	if err := p.check(); err != nil {
		return fmt.Errorf("audit: anchor: %w", err)
	}
	// Numbers as text: JSON numbers through a KV store may come back as
	// floats.
	return a.KV.Put(ctx, a.key(p.Trail), map[string]any{
		"seq": strconv.FormatUint(p.Seq, 10), "hash": p.Hash, "time": p.Time.UTC().Format(TimeLayout),
	})
}

// Points implements Anchor: the last checkpoint put, or none.
func (a KVAnchor) Points(ctx context.Context, trail string) ([]AnchorPoint, error) {
	if !isHash(trail) {
		return nil, fmt.Errorf("audit: anchor: trail id %q is not a SHA-256", trail)
	}
	data, err := a.KV.Get(ctx, a.key(trail))
	if err != nil {
		return nil, fmt.Errorf("audit: anchor: %w", err)
	}
	if data == nil {
		return nil, nil
	}
	str := func(k string) string { s, _ := data[k].(string); return s }
	seq, err := strconv.ParseUint(str("seq"), 10, 64)
	t, terr := time.Parse(TimeLayout, str("time"))
	p := AnchorPoint{Trail: trail, Seq: seq, Hash: str("hash"), Time: t}
	if err != nil || terr != nil || p.check() != nil {
		return nil, fmt.Errorf("audit: anchor %s: not an anchored checkpoint", a.key(trail))
	}
	return []AnchorPoint{p}, nil
}

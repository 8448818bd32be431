package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// go test ./audit -run '^$' -bench . -benchmem
//
// The fsync cost depends on the disk under the temporary directory
// (TMPDIR); run it where the trail will live to see the real number.

func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct {
		name string
		sync SyncPolicy
	}{{"fsync=record", SyncEveryRecord}, {"fsync=checkpoint", SyncOnCheckpoint}} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			w, err := Open(ctx, filepath.Join(b.TempDir(), "a.jsonl"), Options{Signer: testHMAC(b), Sync: bc.sync})
			if err != nil {
				b.Fatal(err)
			}
			r := sample(1)
			for b.Loop() {
				if _, err := w.Append(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkAppendParallel: many goroutines appending with an fsync per
// record share fsyncs (group commit).
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	w, err := Open(ctx, filepath.Join(b.TempDir(), "a.jsonl"), Options{Signer: testHMAC(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		r := sample(1)
		for pb.Next() {
			if _, err := w.Append(ctx, r); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkVerify: a 10,000-record trail with the default checkpoint
// interval, read from memory; ns/op is per trail, MB/s over its bytes.
func BenchmarkVerify(b *testing.B) {
	path := filepath.Join(b.TempDir(), "a.jsonl")
	writeTrail(b, path, 10_000, DefaultCheckpointEvery)
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	v := testHMAC(b)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	var n int
	for b.Loop() {
		sum, err := Verify(ctx, bytes.NewReader(data), v)
		if err != nil {
			b.Fatal(err)
		}
		n = sum.Records
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}

// BenchmarkQueue: what a caller (the relay's thread with a key press)
// pays to hand a record over, and the throughput to disk: each
// iteration appends one record; Sync at the end waits until all are
// written, a batch per fsync.
func BenchmarkQueue(b *testing.B) {
	ctx := context.Background()
	w, err := Open(ctx, filepath.Join(b.TempDir(), "a.jsonl"), Options{Signer: testHMAC(b)})
	if err != nil {
		b.Fatal(err)
	}
	q, err := NewQueue(w, QueueOptions{Size: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	r := sample(1)
	for b.Loop() {
		if _, err := q.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	if err := q.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	if err := q.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

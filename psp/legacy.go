package psp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.uber.org/zap"
)

// Before the store, the connector kept its state in files under
// Config.StateDir: "stan", the first STAN not yet handed out (a
// high-water mark reserved ahead), and "reversals/", one JSON file per
// queued Reversal. migrateStateDir moves both into the store on the first
// start with one, then removes the files, so that they are never sent or
// counted twice and nothing but the store is read afterwards.

// migrateStateDir moves what dir holds into st. A missing dir, or one
// without those files, is nothing to do. A file that does not parse, or
// that the store refuses, is renamed .bad and logged, so that it neither
// stops the gateway nor comes back on every start.
func migrateStateDir(ctx context.Context, dir, terminal string, st Store, log *zap.Logger) error {
	if dir == "" {
		return nil
	}
	if err := migrateSTAN(ctx, filepath.Join(dir, "stan"), terminal, st, log); err != nil {
		return err
	}
	return migrateReversals(ctx, filepath.Join(dir, "reversals"), st, log)
}

// migrateSTAN raises the store's counter to where the file left off, so
// that no STAN a previous version handed out is handed out again.
func migrateSTAN(ctx context.Context, path, terminal string, st Store, log *zap.Logger) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("psp: reading the previous STAN counter: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 1 || n > maxSTAN {
		return fmt.Errorf("psp: the previous STAN counter %s is corrupt: fix or remove it (a STAN may then repeat)", path)
	}
	v, err := st.AdvanceCounter(ctx, stanCounter(terminal), 0, int64(n-1))
	if err != nil {
		return fmt.Errorf("psp: moving the STAN counter into the store: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("psp: %w", err)
	}
	log.Info("STAN counter moved into the store", zap.String("from", path), zap.Int64("counter", v))
	return nil
}

func migrateReversals(ctx context.Context, dir string, st Store, log *zap.Logger) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("psp: reading the previous reversal queue: %w", err)
	}
	moved := 0
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		r, err := readLegacyReversal(p)
		if err == nil {
			_, err = st.EnqueueReversal(ctx, r.toStore())
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("psp: moving the reversal queue into the store: %w", err)
			}
			log.Error("reversal of a previous version not moved into the store: set aside as .bad",
				zap.String("file", p), zap.Error(err))
			_ = os.Rename(p, p+".bad")
			continue
		}
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("psp: %w", err)
		}
		moved++
	}
	if left, _ := os.ReadDir(dir); len(left) == 0 {
		_ = os.Remove(dir)
	}
	if moved > 0 {
		log.Info("reversal queue moved into the store", zap.String("from", dir), zap.Int("reversals", moved))
	}
	return nil
}

// readLegacyReversal reads one queued reversal of a previous version.
func readLegacyReversal(path string) (*Reversal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := new(Reversal)
	if err := json.Unmarshal(b, r); err != nil || r.STAN == "" {
		return nil, errors.New("not a queued reversal")
	}
	return r, nil
}

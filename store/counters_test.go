package store

import (
	"errors"
	"sync"
	"testing"
)

func TestAdvanceCounter(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		steps := []struct {
			name        string
			by, atLeast int64
			want        int64
		}{
			{"stan/T1", 1000, 0, 1000},
			{"stan/T1", 1000, 0, 2000},
			{"stan/T2", 5, 0, 5},        // counters are separate
			{"stan/T1", 0, 0, 2000},     // reads without moving
			{"stan/T1", 10, 500, 2010},  // a floor below the value changes nothing
			{"stan/T2", 10, 700, 710},   // a floor above it is raised to first
			{"stan/T3", 1000, 41, 1041}, // and applies to a new counter too
		}
		for _, st := range steps {
			got, err := s.AdvanceCounter(c, st.name, st.by, st.atLeast)
			if err != nil || got != st.want {
				t.Errorf("AdvanceCounter(%s, %d, %d) = %d, %v; want %d", st.name, st.by, st.atLeast, got, err, st.want)
			}
		}
		for name, bad := range map[string]func() error{
			"empty name":    func() error { _, err := s.AdvanceCounter(c, "", 1, 0); return err },
			"negative step": func() error { _, err := s.AdvanceCounter(c, "x", -1, 0); return err },
			"card in name":  func() error { _, err := s.AdvanceCounter(c, "stan/4111111111111111", 1, 0); return err },
		} {
			if err := bad(); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrCardData) {
				t.Errorf("%s: %v", name, err)
			}
		}
	})
}

// TestAdvanceCounterConcurrent: gateways reserving blocks at the same
// time each get blocks no other gets.
func TestAdvanceCounterConcurrent(t *testing.T) {
	each(t, func(t *testing.T, s *Store, _ *clock) {
		c := ctx(t)
		const workers, rounds, block = 4, 25, 1000
		var mu sync.Mutex
		ends := map[int64]bool{}
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range rounds {
					v, err := s.AdvanceCounter(c, "stan/T1", block, 0)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if ends[v] {
						t.Errorf("block ending at %d handed out twice", v)
					}
					ends[v] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(ends) != workers*rounds {
			t.Errorf("%d blocks, want %d", len(ends), workers*rounds)
		}
		for v := range ends {
			if v%block != 0 || v > workers*rounds*block {
				t.Errorf("block end %d out of step", v)
			}
		}
	})
}

package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// tvBin is the tonevault binary built for this run.
var tvBin string

// envRace, when "1", builds the gateway with the race detector: a race
// in the product then makes it exit 66 and the test that stops it fail.
const envRace = "TONEVAULT_E2E_RACE"

// TestMain builds the real product once: each test runs it as a
// subprocess, so what is tested is what ships, logs included.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tonevault-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		root, err := moduleRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		tvBin = filepath.Join(dir, "tonevault")
		args := []string{"build", "-o", tvBin}
		if os.Getenv(envRace) == "1" {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, "./cmd/tonevault")...)
		build.Dir = root
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/tonevault: %v\n%s", err, out)
			return 1
		}
		code := m.Run()
		reportLatency()
		return code
	}()
	os.Exit(code)
}

// moduleRoot is the directory of the go.mod the tests belong to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside a Go module")
	}
	return filepath.Dir(mod), nil
}

// Submit latencies (POST submit to its 200 answer) over the run, by the
// state answered: reported, never asserted (shared machine).
var (
	latMu     sync.Mutex
	latencies = map[string][]time.Duration{}
)

func recordLatency(state string, d time.Duration) {
	latMu.Lock()
	latencies[state] = append(latencies[state], d)
	latMu.Unlock()
}

func reportLatency() {
	latMu.Lock()
	defer latMu.Unlock()
	states := slices.Sorted(maps.Keys(latencies))
	for _, st := range states {
		s := slices.Clone(latencies[st])
		slices.Sort(s)
		pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
		fmt.Printf("e2e: submit → %s: %d answers, p50 %v, p99 %v, max %v\n", st, len(s), pct(0.50), pct(0.99), s[len(s)-1])
	}
}

package loadtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseSchedstat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2153000000 957900000 14364\n", 957900000, true},
		{"0 0 0", 0, true},
		{"2153000000 957900000", 0, false},
		{"2153000000 -5 1", 0, false},
		{"a b c", 0, false},
		{"", 0, false},
	} {
		got, ok := parseSchedstat([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSteal(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     time.Duration
		ok       bool
	}{
		{"steal", "cpu  100 0 50 9000 400 0 3 250 0 0\ncpu0 50 0 25 4500 200 0 1 125 0 0\n", 2500 * time.Millisecond, true},
		{"no steal field", "cpu  100 0 50 9000 400 0 3\n", 0, false},
		{"no cpu line", "intr 12 3\nctxt 99\n", 0, false},
		{"cpu0 only", "cpu0 1 2 3 4 5 6 7 8\n", 0, false},
		{"garbage", "cpu  a b c d e f g h\n", 0, false},
	} {
		got, ok := parseSteal([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestWaitsSince: a thread started in the window counts whole, one that
// ended is dropped, the others count their difference.
func TestWaitsSince(t *testing.T) {
	before := schedWaits{1: 10 * time.Millisecond, 2: 5 * time.Millisecond, 3: time.Second}
	after := schedWaits{1: 25 * time.Millisecond, 2: 5 * time.Millisecond, 4: 7 * time.Millisecond}
	if got, want := after.since(before), 22*time.Millisecond; got != want {
		t.Errorf("since = %v, want %v", got, want)
	}
}

func TestSchedWindowText(t *testing.T) {
	w := schedWindow{relay: 958 * time.Millisecond, gen: 1700 * time.Millisecond, steal: 40 * time.Millisecond}
	if got, want := w.text(2*time.Second), "relay 958ms (0.48 of its CPU time), generator 1.7s; steal 40ms"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	none := schedWindow{relay: -1, gen: -1, steal: -1}
	if got, want := none.text(time.Second), "relay n/a, generator n/a; steal n/a"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
}

// TestReadWaits reads this process's own threads where the kernel keeps
// schedstats.
func TestReadWaits(t *testing.T) {
	if _, ok := readWaits(0); ok {
		t.Error("pid 0 should be n/a")
	}
	if runtime.GOOS != "linux" {
		t.Skip("no /proc/PID/task")
	}
	if _, err := os.Stat("/proc/self/schedstat"); err != nil {
		t.Skip("kernel without schedstats")
	}
	w, ok := readWaits(os.Getpid())
	if !ok || len(w) == 0 {
		t.Fatalf("readWaits(self) = %v, %v", w, ok)
	}
	if _, ok := readSteal(); !ok {
		t.Error("readSteal: /proc/stat has no steal field")
	}
}

// TestRunPinned: --pin puts the generator on its first CPU and the relay
// child on the others, and says so; without a child it is refused.
func TestRunPinned(t *testing.T) {
	cpus, err := onlineCPUs()
	if err != nil {
		t.Fatal(err)
	}
	if len(cpus) < 2 {
		t.Skipf("%d CPU", len(cpus))
	}
	defer func() {
		// Give this process its CPUs back for the tests after this one.
		if err := pinProcess(os.Getpid(), cpus); err != nil {
			t.Fatal(err)
		}
	}()
	o := Options{Calls: 10, Duration: time.Second, LookAhead: 30 * time.Millisecond, Relay: RelayTonevault, Pin: true}
	o.Child = testChild(o.Relay)
	var log bytes.Buffer
	res, err := Run(o, &log)
	if err != nil {
		t.Fatal(err, log.String())
	}
	if !slices.Equal(res.pinned[0], cpus[:1]) || !slices.Equal(res.pinned[1], cpus[1:]) {
		t.Errorf("pinned %v, want %v and %v", res.pinned, cpus[:1], cpus[1:])
	}
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	if set.Count() != 1 || !set.IsSet(cpus[0]) {
		t.Errorf("the generator's thread may run on %d CPUs, want CPU %d alone", set.Count(), cpus[0])
	}
	var out bytes.Buffer
	res.Print(&out, o)
	if want := fmt.Sprintf("the generator on CPU %v and the relay on CPU %v", cpus[:1], cpus[1:]); !strings.Contains(out.String(), want) {
		t.Errorf("the report does not say %q:\n%s", want, out.String())
	}
	if res.recv[0].Load() == 0 || res.recv[1].Load() == 0 {
		t.Errorf("nothing relayed: %d, %d", res.recv[0].Load(), res.recv[1].Load())
	}

	o.Child = nil
	if _, err := Run(o, io.Discard); err == nil || !strings.Contains(err.Error(), "--in-process") {
		t.Errorf("--pin with the relay in process: %v", err)
	}
}

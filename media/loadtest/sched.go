package loadtest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// A relay's latency tail on a shared or virtual machine is largely time
// its threads spent runnable but not running: a relay thread that waits
// for a CPU holds every packet it was woken for. The kernel counts that
// wait per thread (/proc/PID/task/TID/schedstat, its second field) and
// the time the hypervisor took the CPUs away (steal, /proc/stat), so a
// run reports both beside its latency, and a tail can be told apart from
// the relay's own cost.

// schedWaits is each thread's run-queue wait so far, by thread ID.
type schedWaits map[int]time.Duration

// readWaits reads the run-queue wait of every thread of process pid; ok
// is false when the kernel keeps no schedstats or the process is gone.
func readWaits(pid int) (schedWaits, bool) {
	if pid <= 0 {
		return nil, false
	}
	tids, err := threadIDs(pid)
	if err != nil {
		return nil, false
	}
	w := make(schedWaits, len(tids))
	for _, tid := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, tid))
		if err != nil {
			continue // the thread ended between the listing and the read
		}
		if d, ok := parseSchedstat(b); ok {
			w[tid] = d
		}
	}
	return w, len(w) > 0
}

// parseSchedstat takes "run_ns wait_ns timeslices" and returns the wait.
func parseSchedstat(b []byte) (time.Duration, bool) {
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return 0, false
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ns < 0 {
		return 0, false
	}
	return time.Duration(ns), true
}

// since is how long the threads waited for a CPU between before and w:
// a thread that started in between counts whole, one that ended in
// between is lost (its wait is no longer readable).
func (w schedWaits) since(before schedWaits) time.Duration {
	var d time.Duration
	for tid, v := range w {
		d += v - before[tid]
	}
	return d
}

// readSteal is the steal time of all CPUs so far (/proc/stat's cpu line,
// the eighth field, in USER_HZ); ok is false where the kernel gives none.
func readSteal() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	return parseSteal(b)
}

func parseSteal(b []byte) (time.Duration, bool) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 9 {
			return 0, false
		}
		t, err := strconv.ParseInt(f[8], 10, 64)
		if err != nil {
			return 0, false
		}
		const clkTck = 100 // USER_HZ on Linux
		return time.Duration(t) * time.Second / clkTck, true
	}
	return 0, false
}

// schedSample is what a run reads at each end of its measured window.
type schedSample struct {
	relay, gen schedWaits
	steal      time.Duration
	relayOK    bool
	genOK      bool
	stealOK    bool
}

func takeSched(relayPID int) schedSample {
	var s schedSample
	s.relay, s.relayOK = readWaits(relayPID)
	s.gen, s.genOK = readWaits(os.Getpid())
	s.steal, s.stealOK = readSteal()
	return s
}

// schedWindow is the waiting in a run's measured window; a field is -1
// where it could not be read.
type schedWindow struct {
	relay, gen, steal time.Duration
}

func windowOf(a, b schedSample) schedWindow {
	w := schedWindow{relay: -1, gen: -1, steal: -1}
	if a.relayOK && b.relayOK {
		w.relay = b.relay.since(a.relay)
	}
	if a.genOK && b.genOK {
		w.gen = b.gen.since(a.gen)
	}
	if a.stealOK && b.stealOK {
		w.steal = b.steal - a.steal
	}
	return w
}

// text reads "relay 958ms (0.27 of its CPU time), generator 1.7s; steal
// 40ms", n/a for what could not be read; relayCPU is the relay's CPU
// time in the same window (0: not known).
func (w schedWindow) text(relayCPU time.Duration) string {
	d := func(v time.Duration) string {
		if v < 0 {
			return "n/a"
		}
		return v.Round(time.Millisecond).String()
	}
	relay := d(w.relay)
	if w.relay >= 0 && relayCPU > 0 {
		relay += fmt.Sprintf(" (%.2f of its CPU time)", w.relay.Seconds()/relayCPU.Seconds())
	}
	return fmt.Sprintf("relay %s, generator %s; steal %s", relay, d(w.gen), d(w.steal))
}

package media

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

const capSysNice = 23 // include/uapi/linux/capability.h

// threadCaps are the calling thread's capabilities.
func threadCaps() (unix.CapUserHeader, [2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	err := unix.Capget(&hdr, &data[0])
	return hdr, data, err
}

// haveCap says whether the calling thread has capability c in its
// effective set.
func haveCap(t *testing.T, c uint) bool {
	t.Helper()
	_, data, err := threadCaps()
	if err != nil {
		t.Fatal(err)
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// ringThreadSched starts an engine of one ring with sc and returns its
// thread's scheduling as the kernel has it.
func ringThreadSched(t *testing.T, sc ringSched) (*unix.SchedAttr, error) {
	t.Helper()
	e, err := newUringEngineN(1, sc, zap.NewNop(), testMetrics(t))
	if err != nil {
		return nil, err
	}
	defer e.close()
	a, err := unix.SchedGetAttr(e.rings[0].tid, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a, nil
}

// TestRingScheduling: the ring's thread gets the configured policy and
// priority, and a thread it does not own keeps the default.
func TestRingScheduling(t *testing.T) {
	a, err := ringThreadSched(t, ringSched{})
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	if a.Policy != unix.SCHED_NORMAL || a.Nice != 0 {
		t.Errorf("default: policy %d nice %d, want %d and 0", a.Policy, a.Nice, unix.SCHED_NORMAL)
	}

	// A higher nice value needs no privilege.
	a, err = ringThreadSched(t, ringSched{SchedOther, 7})
	if err != nil {
		t.Fatal(err)
	}
	if a.Policy != unix.SCHED_NORMAL || a.Nice != 7 {
		t.Errorf("other 7: policy %d nice %d, want %d and 7", a.Policy, a.Nice, unix.SCHED_NORMAL)
	}

	// Real time needs CAP_SYS_NICE (or RLIMIT_RTPRIO); the ring's thread
	// is made by the runtime with the process's capabilities.
	runtime.LockOSThread()
	privileged := haveCap(t, capSysNice)
	runtime.UnlockOSThread()
	a, err = ringThreadSched(t, ringSched{SchedFIFO, 3})
	switch {
	case privileged && err != nil:
		t.Fatalf("fifo 3 with CAP_SYS_NICE: %v", err)
	case privileged:
		if a.Policy != unix.SCHED_FIFO || a.Priority != 3 {
			t.Errorf("fifo 3: policy %d priority %d, want %d and 3", a.Policy, a.Priority, unix.SCHED_FIFO)
		}
	case err == nil:
		t.Logf("fifo 3 granted without CAP_SYS_NICE (RLIMIT_RTPRIO allows it)")
	case !errors.Is(err, errRingSched):
		t.Errorf("fifo 3 refused with %v, want errRingSched", err)
	}

	// This goroutine's thread was not the ring's: it has the default.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if a, err := unix.SchedGetAttr(0, 0); err != nil || a.Policy != unix.SCHED_NORMAL || a.Nice != 0 {
		t.Errorf("another thread: %+v, %v; want the default", a, err)
	}
}

// TestRingSchedulingRefused: a thread without CAP_SYS_NICE asking for
// real time gets an error that names the keys and what is missing, and
// NewRelay on io auto fails with it rather than relay on goroutines
// without the setting.
func TestRingSchedulingRefused(t *testing.T) {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread, its capability gone, ends with
		// this goroutine.
		runtime.LockOSThread()
		hdr, data, err := threadCaps()
		if err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << capSysNice
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_RTPRIO, &lim); err == nil && lim.Cur >= 99 {
			errc <- errors.New("skip: RLIMIT_RTPRIO allows real time to anyone")
			return
		}
		errc <- ringSched{SchedRR, 99}.apply()
	}()
	err := <-errc
	if err != nil && strings.HasPrefix(err.Error(), "skip: ") {
		t.Skip(err)
	}
	if !errors.Is(err, errRingSched) {
		t.Fatalf("apply without CAP_SYS_NICE: %v, want errRingSched", err)
	}
	for _, want := range []string{"media.ring_scheduling rr", "media.ring_priority 99", "CAP_SYS_NICE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}

	// NewRelay itself, where this process may not raise a thread.
	runtime.LockOSThread()
	privileged := haveCap(t, capSysNice)
	runtime.UnlockOSThread()
	if privileged {
		return
	}
	c := testConfig()
	c.IO, c.RingScheduling, c.RingPriority = IOAuto, SchedFIFO, 1
	if r, err := NewRelay(c, Options{}); err == nil {
		r.Close()
		t.Log("fifo 1 granted without CAP_SYS_NICE (RLIMIT_RTPRIO allows it)")
	} else if !errors.Is(err, errRingSched) {
		t.Errorf("NewRelay: %v, want errRingSched", err)
	}
}

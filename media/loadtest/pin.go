package loadtest

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinProcess sets the CPU affinity of every thread of process pid to
// cpus. Threads the process starts later are cloned from these and keep
// it.
func pinProcess(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	tids, err := threadIDs(pid)
	if err != nil {
		return err
	}
	for _, tid := range tids {
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("thread %d of %d: %w", tid, pid, err)
		}
	}
	return nil
}

// threadIDs lists the threads of process pid (/proc/PID/task); a thread
// may end before the caller gets to it.
func threadIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// onlineCPUs are the CPUs this process may run on, in order.
func onlineCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, err
	}
	var cpus []int
	for c := range 1024 {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// pinCPUs are the CPUs --pin shares out: two or more.
func pinCPUs() ([]int, error) {
	cpus, err := onlineCPUs()
	if err != nil {
		return nil, fmt.Errorf("--pin: %w", err)
	}
	if len(cpus) < 2 {
		return nil, fmt.Errorf("--pin: %d CPU to run on; it needs 2 or more", len(cpus))
	}
	return cpus, nil
}

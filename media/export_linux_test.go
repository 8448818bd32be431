package media

import "golang.org/x/sys/unix"

// FailRing makes io_uring_enter fail (EFAULT) on the ring with index id
// of every relay, for the tests of package media_test, and returns what
// takes the fault out again.
func FailRing(id int) (restore func()) {
	f := func(r *ring) unix.Errno {
		if r.id == id {
			return unix.EFAULT
		}
		return 0
	}
	testRingFault.Store(&f)
	return func() { testRingFault.Store(nil) }
}

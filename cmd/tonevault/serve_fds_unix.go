//go:build unix

package main

import "syscall"

// raiseNoFile raises the soft limit on open files to the hard limit and
// returns it. (Go's runtime does so at start on some systems already;
// this makes it so everywhere and says what the limit is.)
func raiseNoFile() (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		want := l
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			l = want
		}
	}
	const most = 1 << 30 // RLIM_INFINITY and the like
	return int(min(l.Cur, most)), nil
}

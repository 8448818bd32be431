//go:build !unix

package audit

import (
	"errors"
	"syscall"
)

// diskFull reports whether err says the file system is full.
func diskFull(err error) bool { return errors.Is(err, syscall.ENOSPC) }

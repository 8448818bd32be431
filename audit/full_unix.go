//go:build unix

package audit

import (
	"errors"
	"syscall"
)

// diskFull reports whether err says the file system or the user's quota
// is full.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

//go:build !amd64

package dtmf

// plainly runs f: there is no assembly to switch off.
func plainly(f func()) { f() }

package media

// SetTestFault installs f as the masker's fault hook (testFault) for the
// tests of other packages built with this one's (package media_test), and
// returns what takes it out again.
func SetTestFault(f func(callID string)) (restore func()) {
	testFault.Store(&f)
	return func() { testFault.Store(nil) }
}

package tokenize

import (
	"bytes"
	"testing"

	"github.com/tonevault/tonevault/internal/secret"
)

// TestExpMACInputOnHeap: the expiry MAC's input (card number and expiry)
// is made on the heap, where the wipe reaches it, not in a stack frame
// that a growing stack copies and leaves behind (the core dump test found
// such a copy).
func TestExpMACInputOnHeap(t *testing.T) {
	pan, exp := []byte("4111111111111111"), []byte("1230")
	want := []byte("exp:4111111111111111:1230")
	ok := true
	allocs := testing.AllocsPerRun(100, func() {
		b := expMACInput(pan, exp)
		ok = ok && bytes.Equal(b, want)
		secret.Wipe(b)
	})
	if !ok {
		t.Fatal("expMACInput: not exp:<card number>:<expiry>")
	}
	if allocs != 1 {
		t.Fatalf("%v allocations, want 1: the buffer is on the stack", allocs)
	}
}

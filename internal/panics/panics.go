// Package panics says what the operational log may hold of a recovered
// panic. Every place that recovers one (the relay per call and per
// io_uring ring, the SIP handlers and each call's goroutines, the API
// handlers, the payment sessions' callbacks) logs it through Fields, so
// that they all say the same and none says too much.
package panics

import (
	"fmt"
	"runtime"

	"go.uber.org/zap"
)

// Fields describe a recovered panic value v: its type, the message of a
// runtime error (an index out of range, a nil dereference: the runtime
// writes those, with numbers no longer than a slice's length) and the
// stack of the goroutine that recovered it, which still holds the frames
// that panicked. Any other value is left out: a panic(err) or panic(buf)
// can hold whatever its caller had, card data included, and the log's
// masking of card numbers is a safety net, not a licence.
func Fields(v any) []zap.Field {
	f := []zap.Field{zap.String("panic", fmt.Sprintf("%T", v))}
	if re, ok := v.(runtime.Error); ok {
		f = append(f, zap.String("runtime_error", re.Error()))
	}
	return append(f, zap.StackSkip("stack", 1))
}

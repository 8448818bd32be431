package panics

import (
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestFields: the type is always there, a runtime error's message too,
// the stack names the function that panicked; any other value's content
// never reaches the log.
func TestFields(t *testing.T) {
	secret := "4111111111111111"
	tests := []struct {
		name     string
		panic    func()
		wantType string
		wantMsg  string // runtime_error, "" when there must be none
	}{
		{"runtime error", func() {
			var s []byte
			_ = s[len(secret)]
		}, "runtime.boundsError", "index out of range"},
		{"error value", func() { panic(errors.New("card " + secret)) }, "*errors.errorString", ""},
		{"string value", func() { panic("card " + secret) }, "string", ""},
		{"bytes value", func() { panic([]byte(secret)) }, "[]uint8", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			log := zap.New(core)
			func() {
				defer func() {
					v := recover()
					if v == nil {
						t.Fatal("no panic")
					}
					log.Error("recovered", Fields(v)...)
				}()
				tt.panic()
			}()
			e := logs.All()[0]
			m := e.ContextMap()
			if m["panic"] != tt.wantType {
				t.Errorf("panic = %v, want %s", m["panic"], tt.wantType)
			}
			msg, _ := m["runtime_error"].(string)
			if tt.wantMsg == "" && msg != "" || !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("runtime_error = %q, want %q", msg, tt.wantMsg)
			}
			stack, _ := m["stack"].(string)
			if !strings.Contains(stack, "runtime.gopanic") || !strings.Contains(stack, "panics.TestFields.func") {
				t.Errorf("stack does not show the panicking test:\n%s", stack)
			}
			for k, v := range m {
				if strings.Contains(fmtValue(v), secret) {
					t.Errorf("field %s holds the panic's value: %v", k, v)
				}
			}
		})
	}
}

func fmtValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return ""
}

package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
)

const pan = "4111111111111111"

func TestNeverPrints(t *testing.T) {
	s := New([]byte(pan))
	defer s.Wipe()
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("card", "pan", s)
	js, err := json.Marshal(struct{ PAN Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%s":   fmt.Sprintf("%s", s),
		"%v":   fmt.Sprintf("%v", s),
		"%+v":  fmt.Sprintf("%+v", struct{ P Secret }{s}),
		"%#v":  fmt.Sprintf("%#v", s),
		"%x":   fmt.Sprintf("%x", s),
		"%q":   fmt.Sprintf("%q", s),
		"%d":   fmt.Sprintf("%d", s),
		"json": string(js),
		"slog": logBuf.String(),
		"err":  fmt.Errorf("wrap: %v", s).Error(),
	}
	hexPAN := fmt.Sprintf("%x", []byte(pan))
	for name, out := range outputs {
		if strings.Contains(out, pan) || strings.Contains(out, hexPAN) || strings.Contains(out, "49, 49") {
			t.Errorf("%s leaks the PAN: %s", name, out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%s = %q, want the placeholder", name, out)
		}
	}
}

func TestWipe(t *testing.T) {
	src := []byte(pan)
	s := New(src)
	alias := s
	if s.Wiped() {
		t.Fatal("fresh secret reads as wiped")
	}
	s.Wipe()
	if !alias.Wiped() || !s.Wiped() {
		t.Fatalf("not wiped: %v", alias.Bytes())
	}
	if string(src) != pan {
		t.Fatal("New must copy, not alias, its input")
	}
	var empty Secret
	empty.Wipe()
	if !empty.Wiped() || empty.Len() != 0 {
		t.Fatal("nil secret")
	}
}

// TestNotAString: string(s) must not compile, and nothing outside the
// package may reach the bytes but through Bytes. reflect applies the
// language's conversion rules.
func TestNotAString(t *testing.T) {
	typ := reflect.TypeFor[Secret]()
	if typ.ConvertibleTo(reflect.TypeFor[string]()) {
		t.Errorf("a %s converts to a string", typ)
	}
	if typ.ConvertibleTo(reflect.TypeFor[[]byte]()) {
		t.Errorf("a %s converts to []byte", typ)
	}
	for i := range typ.NumField() {
		if f := typ.Field(i); f.IsExported() {
			t.Errorf("field %s is exported", f.Name)
		}
	}
}

func TestWrapShares(t *testing.T) {
	b := []byte(pan)
	s := Wrap(b)
	if s.Len() != len(pan) || &s.Bytes()[0] != &b[0] {
		t.Fatal("Wrap copied its input")
	}
	s.Wipe()
	if !bytes.Equal(b, make([]byte, len(pan))) {
		t.Fatalf("wiping the Secret left its buffer %v", b)
	}
}

// TestAllocOnHeap proves that a buffer from Alloc is a heap allocation
// even where the compiler could have put it on the stack: the buffer
// here does not escape and is small, so without the go:noinline on Alloc
// it is inlined and costs no allocation.
func TestAllocOnHeap(t *testing.T) {
	for _, n := range []int{4, 16, 25, 32} {
		allocs := testing.AllocsPerRun(100, func() {
			b := append(Alloc(n), pan[:min(n, len(pan))]...)
			Wipe(b)
		})
		if allocs != 1 {
			t.Errorf("Alloc(%d): %v heap allocations per run, want 1: the buffer is on the stack", n, allocs)
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		s := New([]byte{'4', '1', '1', '1'})
		s.Wipe()
	})
	if allocs != 1 {
		t.Errorf("New: %v heap allocations per run, want 1: the copy is on the stack", allocs)
	}
}

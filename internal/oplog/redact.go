package oplog

import (
	"bytes"
	"encoding/json"
	"strings"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/internal/pan"
)

// Redacting wraps enc (zap's JSON or console encoder, or any other) so
// that card numbers are masked in everything it encodes, as described in
// the package documentation.
func Redacting(enc zapcore.Encoder) zapcore.Encoder {
	if r, ok := enc.(*redactEncoder); ok {
		return r
	}
	return &redactEncoder{redactObject{enc}, enc}
}

// redactEncoder is the top-level encoder. Fields reach it in two ways:
// through its Add methods (context fields added by Logger.With) and as the
// fields argument of EncodeEntry, which zap's encoders add to themselves
// directly, bypassing any wrapper; so EncodeEntry hands them over as one
// inline object that adds them through the wrapper.
type redactEncoder struct {
	redactObject
	enc zapcore.Encoder
}

func (e *redactEncoder) Clone() zapcore.Encoder {
	c := e.enc.Clone()
	return &redactEncoder{redactObject{c}, c}
}

func (e *redactEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	ent.Message = pan.Redact(ent.Message)
	ent.LoggerName = pan.Redact(ent.LoggerName)
	ent.Stack = pan.Redact(ent.Stack)
	if len(fields) == 0 {
		return e.enc.EncodeEntry(ent, nil)
	}
	return e.enc.EncodeEntry(ent, []zapcore.Field{{Type: zapcore.InlineMarshalerType, Interface: redactFields(fields)}})
}

// redactFields adds fields through redactObject.
type redactFields []zapcore.Field

func (fs redactFields) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	r := redactObject{enc}
	for i := range fs {
		fs[i].AddTo(r)
	}
	return nil
}

// redactObject masks what is added to an ObjectEncoder; the methods it
// does not override (bools, floats, times, ...) pass through.
type redactObject struct{ zapcore.ObjectEncoder }

func (e redactObject) AddString(k, v string) { e.ObjectEncoder.AddString(k, pan.Redact(v)) }
func (e redactObject) AddByteString(k string, v []byte) {
	e.ObjectEncoder.AddByteString(k, pan.RedactBytes(v))
}
func (e redactObject) AddBinary(k string, v []byte) { e.ObjectEncoder.AddBinary(k, pan.RedactBytes(v)) }
func (e redactObject) AddReflected(k string, v any) error {
	return e.ObjectEncoder.AddReflected(k, redactReflected(v))
}
func (e redactObject) AddObject(k string, m zapcore.ObjectMarshaler) error {
	return e.ObjectEncoder.AddObject(k, redactObjectMarshaler{m})
}
func (e redactObject) AddArray(k string, m zapcore.ArrayMarshaler) error {
	return e.ObjectEncoder.AddArray(k, redactArrayMarshaler{m})
}
func (e redactObject) AddInt(k string, v int) { e.AddInt64(k, int64(v)) }
func (e redactObject) AddInt64(k string, v int64) {
	if s, ok := pan.RedactInt(v); ok {
		e.ObjectEncoder.AddString(k, s)
		return
	}
	e.ObjectEncoder.AddInt64(k, v)
}
func (e redactObject) AddUint(k string, v uint) { e.AddUint64(k, uint64(v)) }
func (e redactObject) AddUint64(k string, v uint64) {
	if s, ok := pan.RedactUint(v); ok {
		e.ObjectEncoder.AddString(k, s)
		return
	}
	e.ObjectEncoder.AddUint64(k, v)
}

type redactObjectMarshaler struct{ m zapcore.ObjectMarshaler }

func (r redactObjectMarshaler) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	return r.m.MarshalLogObject(redactObject{enc})
}

type redactArrayMarshaler struct{ m zapcore.ArrayMarshaler }

func (r redactArrayMarshaler) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	return r.m.MarshalLogArray(redactArray{enc})
}

// redactArray masks what is appended to an ArrayEncoder.
type redactArray struct{ zapcore.ArrayEncoder }

func (e redactArray) AppendString(v string)     { e.ArrayEncoder.AppendString(pan.Redact(v)) }
func (e redactArray) AppendByteString(v []byte) { e.ArrayEncoder.AppendByteString(pan.RedactBytes(v)) }
func (e redactArray) AppendReflected(v any) error {
	return e.ArrayEncoder.AppendReflected(redactReflected(v))
}
func (e redactArray) AppendObject(m zapcore.ObjectMarshaler) error {
	return e.ArrayEncoder.AppendObject(redactObjectMarshaler{m})
}
func (e redactArray) AppendArray(m zapcore.ArrayMarshaler) error {
	return e.ArrayEncoder.AppendArray(redactArrayMarshaler{m})
}
func (e redactArray) AppendInt(v int) { e.AppendInt64(int64(v)) }
func (e redactArray) AppendInt64(v int64) {
	if s, ok := pan.RedactInt(v); ok {
		e.ArrayEncoder.AppendString(s)
		return
	}
	e.ArrayEncoder.AppendInt64(v)
}
func (e redactArray) AppendUint(v uint) { e.AppendUint64(uint64(v)) }
func (e redactArray) AppendUint64(v uint64) {
	if s, ok := pan.RedactUint(v); ok {
		e.ArrayEncoder.AppendString(s)
		return
	}
	e.ArrayEncoder.AppendUint64(v)
}

// redactReflected returns v, or, when v's JSON holds a card number, the
// JSON decoded into maps, slices, strings and numbers with the card
// numbers masked (strings, object keys, and integers, which become masked
// strings).
func redactReflected(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v // the inner encoder reports the error its own way
	}
	digits := 0
	for _, c := range b {
		if '0' <= c && c <= '9' {
			digits++
		}
	}
	if digits < 12 {
		return v
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return v
	}
	y, changed := redactJSON(x)
	if !changed {
		return v
	}
	return y
}

func redactJSON(x any) (any, bool) {
	switch x := x.(type) {
	case string:
		r := pan.Redact(x)
		return r, r != x
	case json.Number:
		s := string(x)
		if strings.ContainsAny(s, ".eE") {
			return x, false
		}
		if r := pan.Redact(s); r != s {
			return r, true
		}
		return x, false
	case []any:
		changed := false
		for i, v := range x {
			var c bool
			x[i], c = redactJSON(v)
			changed = changed || c
		}
		return x, changed
	case map[string]any:
		changed := false
		out := make(map[string]any, len(x))
		for k, v := range x {
			rk := pan.Redact(k)
			rv, c := redactJSON(v)
			changed = changed || c || rk != k
			out[rk] = rv
		}
		return out, changed
	}
	return x, false
}

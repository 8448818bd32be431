// Package oplog builds ToneVault's operational logger: zap writing JSON
// lines, through an encoder that masks card numbers, and a log/slog bridge
// so libraries that log through slog (sipgo) go through the same masking.
//
// The masking is defence in depth. Card data never reaches a log on
// purpose (DESIGN.md invariant 4); this catches the mistakes. Every run of
// 12 to 19 digits that passes the Luhn check, whole ("4111111111111111")
// or in groups separated by 1 to 3 spaces or dashes as people type card
// numbers ("4111 1111 1111 1111"), is rewritten to its first 6 and last 4
// digits with the digits between them replaced by '*'
// ("411111******1111", "4111 11** **** 1111"). Digit runs that fail the
// Luhn check (phone numbers, most order ids) are left alone; one in ten
// 12-19 digit numbers that are not card numbers pass it and are masked too.
//
// What is masked: the message, the logger name, the stack trace, every
// string field (zap.String, zap.Stringer, zap.ByteString, zap.Error with
// its verbose form and causes, and strings inside zap.Object, zap.Array,
// zap.Dict, zap.Inline, slog groups and zap.Any/zap.Reflect values, whose
// JSON is rewritten only when it holds a card number, in which case map and
// struct keys come out sorted), the bytes of zap.Binary before they are
// base64-encoded, and integer fields (zap.Int, zap.Int64, zap.Uint64,
// ...) whose decimal form is a card number, which are then written as a
// masked string. Not masked: field keys, floats, and digits outside ASCII.
//
// zap's Config.Build cannot wrap an encoder, so the core is built here by
// hand: NewCore, or New for a *zap.Logger.
package oplog

import (
	"io"
	"log/slog"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"go.uber.org/zap/zapcore"

	"github.com/tonevault/tonevault/internal/pan"
)

// EncoderConfig is ToneVault's log line: ts (RFC 3339 UTC, nanoseconds),
// level (lower case), logger, caller (package/file.go:line), msg,
// stacktrace, then the fields.
func EncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "ts",
		LevelKey:       "level",
		NameKey:        "logger",
		CallerKey:      "caller",
		FunctionKey:    zapcore.OmitKey,
		MessageKey:     "msg",
		StacktraceKey:  "stacktrace",
		LineEnding:     zapcore.DefaultLineEnding,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeTime:     utcTime,
		EncodeDuration: zapcore.StringDurationEncoder,
		EncodeCaller:   zapcore.ShortCallerEncoder,
		EncodeName:     zapcore.FullNameEncoder,
	}
}

func utcTime(t time.Time, enc zapcore.PrimitiveArrayEncoder) {
	enc.AppendString(t.UTC().Format(time.RFC3339Nano))
}

// NewEncoder returns zap's JSON encoder for cfg, wrapped by Redacting.
func NewEncoder(cfg zapcore.EncoderConfig) zapcore.Encoder {
	return Redacting(zapcore.NewJSONEncoder(cfg))
}

// NewCore returns a core that writes JSON lines (EncoderConfig) with card
// numbers masked to w, for entries at or above level. Writes to w are
// serialized. level may be a zap.AtomicLevel to change it at run time.
func NewCore(w io.Writer, level zapcore.LevelEnabler) zapcore.Core {
	return zapcore.NewCore(NewEncoder(EncoderConfig()), zapcore.Lock(zapcore.AddSync(w)), level)
}

// New returns a logger over NewCore(w, level) that records the caller,
// and a stack trace for errors, with opts applied after.
func New(w io.Writer, level zapcore.LevelEnabler, opts ...zap.Option) *zap.Logger {
	opts = append([]zap.Option{zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel)}, opts...)
	return zap.New(NewCore(w, level), opts...)
}

// NewSlog returns a *slog.Logger that writes through core (with its level
// and masking) using go.uber.org/zap/exp/zapslog. name, if not empty, is
// the logger name on each line (e.g. "sipgo").
func NewSlog(core zapcore.Core, name string) *slog.Logger {
	opts := []zapslog.HandlerOption{zapslog.WithCaller(true)}
	if name != "" {
		opts = append(opts, zapslog.WithName(name))
	}
	return slog.New(zapslog.NewHandler(core, opts...))
}

// Redact returns s with every card number masked as the logger does; s
// itself when there is none. For text that goes somewhere other than the
// log, such as an error returned to an API client.
func Redact(s string) string { return pan.Redact(s) }

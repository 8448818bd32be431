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

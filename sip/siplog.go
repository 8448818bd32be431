package sip

import (
	"context"
	"log/slog"
	"strconv"
)

// withheldKeys are slog attributes through which sipgo would log whole
// SIP messages (it logs the raw bytes of a message it cannot parse under
// "data"): bodies, and with them SIP INFO key presses, must never reach
// the log.
var withheldKeys = map[string]bool{"data": true}

// quietHandler replaces withheld attributes with their length.
type quietHandler struct{ h slog.Handler }

// QuietLog wraps l so that SIP message contents are not logged.
func QuietLog(l *slog.Logger) *slog.Logger { return slog.New(quietHandler{l.Handler()}) }

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool { return q.h.Enabled(ctx, l) }

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(quiet(a))
		return true
	})
	return q.h.Handle(ctx, out)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	qs := make([]slog.Attr, len(as))
	for i, a := range as {
		qs[i] = quiet(a)
	}
	return quietHandler{q.h.WithAttrs(qs)}
}

func (q quietHandler) WithGroup(name string) slog.Handler { return quietHandler{q.h.WithGroup(name)} }

func quiet(a slog.Attr) slog.Attr {
	if withheldKeys[a.Key] {
		n := len(a.Value.String())
		return slog.String(a.Key, "["+strconv.Itoa(n)+" bytes withheld]")
	}
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		qs := make([]any, len(g))
		for i, x := range g {
			qs[i] = quiet(x)
		}
		return slog.Group(a.Key, qs...)
	}
	return a
}

package sip

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestQuietLog(t *testing.T) {
	var buf bytes.Buffer
	l := QuietLog(slog.New(slog.NewTextHandler(&buf, nil)))
	body := "INFO sip:x SIP/2.0\r\n\r\nSignal=5\r\n"
	l.Error("failed to parse", "data", body, "error", "bad")
	l.With("data", body).Warn("w")
	l.WithGroup("g").Info("i", slog.Group("inner", "data", body))
	out := buf.String()
	if strings.Contains(out, "Signal") {
		t.Errorf("message content logged:\n%s", out)
	}
	if n := strings.Count(out, "bytes withheld"); n != 3 {
		t.Errorf("withheld %d times, want 3:\n%s", n, out)
	}
	if !strings.Contains(out, "error=bad") {
		t.Errorf("other attributes lost:\n%s", out)
	}
}

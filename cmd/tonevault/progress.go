package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device such as a terminal.
// No dependency: os.File.Stat and ModeCharDevice.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress draws one status line on a terminal, rewritten in place with
// \r at most once per interval. When off, every method does nothing.
type progress struct {
	w        io.Writer
	on       bool
	now      func() time.Time
	interval time.Duration
	last     time.Time
	width    int // length of the line on screen, to blank it out
}

func newProgress(w io.Writer, on bool, now func() time.Time) *progress {
	if now == nil {
		now = time.Now
	}
	return &progress{w: w, on: on, now: now, interval: 100 * time.Millisecond}
}

// update shows label and done/total as a percentage, unless a line was
// drawn less than an interval ago.
func (p *progress) update(label string, done, total int64) {
	if !p.on {
		return
	}
	t := p.now()
	if !p.last.IsZero() && t.Sub(p.last) < p.interval {
		return
	}
	p.last = t
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	line := fmt.Sprintf("%s %3.0f%%", label, pct)
	pad := max(0, p.width-len([]rune(line)))
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len([]rune(line))
}

// clear blanks the line, before other output or at the end, so results and
// errors never land on top of it.
func (p *progress) clear() {
	if !p.on || p.width == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
	p.width = 0
}

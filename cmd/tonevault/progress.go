package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// barWidth is the progress bar's length in characters.
const barWidth = 20

// update shows label, a bar and done/total as a percentage, unless a line
// was drawn less than an interval ago.
func (p *progress) update(label string, done, total int64) {
	if !p.on {
		return
	}
	t := p.now()
	if !p.last.IsZero() && t.Sub(p.last) < p.interval {
		return
	}
	p.last = t
	frac := 1.0
	if total > 0 {
		frac = float64(min(max(done, 0), total)) / float64(total)
	}
	full := int(frac * barWidth)
	line := fmt.Sprintf("%s [%s%s] %3.0f%%", label, strings.Repeat("#", full), strings.Repeat("-", barWidth-full), 100*frac)
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

// scanProgress is the progress of a scan over many files, reported from
// many goroutines. Each file weighs its size in bytes; within a file, the
// 8 kHz samples done on all its channels count.
type scanProgress struct {
	mu       sync.Mutex
	p        *progress
	one      string    // the label when there is one file
	weight   []float64 // per file
	units    []int64   // per file: 8 kHz samples × channels, once known
	credited []float64 // per file: weight counted so far
	done     float64
	total    float64
	finished int
}

func newScanProgress(p *progress, ts []scanTarget) *scanProgress {
	sp := &scanProgress{p: p, weight: make([]float64, len(ts)), units: make([]int64, len(ts)), credited: make([]float64, len(ts))}
	for i, t := range ts {
		sp.weight[i] = float64(max(t.size, 1))
		sp.total += sp.weight[i]
	}
	if len(ts) == 1 {
		sp.one = "scanning " + filepath.Base(ts[0].name)
	}
	return sp
}

// start sets file i's work: units 8 kHz samples in all.
func (sp *scanProgress) start(i int, units int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.units[i] = units
}

// advance counts n more units of file i done.
func (sp *scanProgress) advance(i int, n int64) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.units[i] > 0 {
		sp.credit(i, sp.weight[i]*float64(n)/float64(sp.units[i]))
	}
	sp.draw()
}

// finish counts file i done, whatever became of it.
func (sp *scanProgress) finish(i int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.credit(i, sp.weight[i]-sp.credited[i])
	sp.finished++
	sp.draw()
}

func (sp *scanProgress) credit(i int, w float64) {
	w = min(w, sp.weight[i]-sp.credited[i])
	sp.credited[i] += w
	sp.done += w
}

func (sp *scanProgress) draw() {
	label := sp.one
	if label == "" {
		label = fmt.Sprintf("scanning %d/%d files", sp.finished, len(sp.weight))
	}
	if sp.total == 0 {
		return
	}
	// Per mille, so that float sums that fall just short still reach 100 %.
	sp.p.update(label, int64(sp.done/sp.total*1000+0.5), 1000)
}

// suspend blanks the line and runs f, which prints, while no goroutine can
// draw it again.
func (sp *scanProgress) suspend(f func()) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	sp.p.clear()
	f()
}

func (sp *scanProgress) clear() { sp.suspend(func() {}) }

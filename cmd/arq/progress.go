package main

import (
	"fmt"
	"io"
	"os"
	"time"
)

// progress reports a long command's advance: done, rate and time left. On
// a terminal it redraws one line; elsewhere it prints a line every few
// seconds, so logs of non-interactive runs stay readable.
type progress struct {
	w        io.Writer
	what     string
	unit     string // what is counted: "events" unless set
	total    int64
	quiet    bool
	terminal bool
	start    time.Time
	lastLine time.Time
	done     int64
}

func newProgress(w io.Writer, what string, total int64, quiet bool) *progress {
	p := &progress{w: w, what: what, unit: "events", total: total, quiet: quiet, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) update(done int64) {
	p.done = done
	p.total = max(p.total, done) // a total that was a guess never reads as more than 100%
	if p.quiet {
		return
	}
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", p.line())
		return
	}
	if time.Since(p.lastLine) >= 5*time.Second {
		p.lastLine = time.Now()
		fmt.Fprintln(p.w, p.line())
	}
}

func (p *progress) line() string {
	elapsed := time.Since(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed
	}
	eta := "?"
	if rate > 0 {
		eta = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(p.done) / float64(p.total)
	}
	return fmt.Sprintf("%s: %d/%d %s (%.0f%%), %.0f %s/s, %s left", p.what, p.done, p.total, p.unit, pct, rate, p.unit, eta)
}

func (p *progress) finish() {
	if p.quiet {
		return
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	elapsed := time.Since(p.start)
	rate := float64(p.done) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(p.w, "%s: done, %d %s in %s (%.0f %s/s)\n", p.what, p.done, p.unit, elapsed.Round(time.Millisecond), rate, p.unit)
}

func (p *progress) fail() {
	if p.terminal && !p.quiet {
		fmt.Fprintln(p.w)
	}
}

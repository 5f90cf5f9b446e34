package move

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Progress shows a copy's progress (CopyProgress) as it goes: on a
// terminal a bar per table and one for the total, redrawn in place on
// every Update; elsewhere (a log, a pipe) a line per table when its state
// changes, and the tables still copying at most every LineEvery.
type Progress struct {
	w        io.Writer
	terminal bool
	now      func() time.Time

	start   time.Time
	samples []sample          // the updates within rateWindow, oldest first
	states  map[string]string // each table's state at the last update
	last    []TableProgress   // the last update, Rate and ETA filled in
	drawn   int               // lines drawn on the terminal by the last update
	printed time.Time         // when lines were last printed for every table
}

type sample struct {
	at     time.Time
	copied map[string]int64
}

const (
	// rateWindow is how far back Update looks to compute rates.
	rateWindow = 10 * time.Second
	// LineEvery is how often Progress prints the tables still copying
	// when it does not write to a terminal.
	LineEvery = 5 * time.Second
	barWidth  = 30
	total     = "total"
)

// NewProgress returns a Progress writing to w; terminal says whether w is
// a terminal (golang.org/x/term.IsTerminal of its descriptor), which it
// may redraw with ANSI escapes.
func NewProgress(w io.Writer, terminal bool) *Progress {
	return &Progress{w: w, terminal: terminal, now: time.Now, states: map[string]string{}}
}

// Update takes the tables' progress now, fills in each table's Rate (rows
// per second over the last rateWindow) and ETA, shows them, and returns
// them followed by the total over all tables (Table "total", State the
// least advanced of the tables').
func (p *Progress) Update(ts []TableProgress) []TableProgress {
	now := p.now()
	if p.start.IsZero() {
		p.start = now
	}
	s := sample{at: now, copied: map[string]int64{}}
	sum := TableProgress{Table: total, State: StateReady}
	for _, t := range ts {
		s.copied[t.Table] = t.Copied
		sum.Copied += t.Copied
		sum.Total += t.Total
		if rank(t.State) < rank(sum.State) {
			sum.State = t.State
		}
	}
	s.copied[total] = sum.Copied
	p.samples = append(p.samples, s)
	for len(p.samples) > 2 && now.Sub(p.samples[1].at) >= rateWindow {
		p.samples = p.samples[1:]
	}
	out := append(append([]TableProgress(nil), ts...), sum)
	first := p.samples[0]
	if dt := now.Sub(first.at).Seconds(); dt > 0 {
		for i := range out {
			t := &out[i]
			t.Rate = float64(t.Copied-first.copied[t.Table]) / dt
			if t.Rate > 0 && t.Copied < t.Total {
				t.ETA = time.Duration(float64(t.Total-t.Copied) / t.Rate * float64(time.Second)).Round(time.Second)
			}
		}
	}
	p.last = out
	if p.terminal {
		p.draw(out)
	} else {
		p.lines(out, now)
	}
	return out
}

// Done prints the totals of the last update: rows copied, time taken and
// the mean rate.
func (p *Progress) Done() {
	if len(p.last) == 0 {
		fmt.Fprintln(p.w, "copied nothing")
		return
	}
	sum := p.last[len(p.last)-1]
	took := p.now().Sub(p.start)
	rate := 0.0
	if took > 0 {
		rate = float64(sum.Copied) / took.Seconds()
	}
	fmt.Fprintf(p.w, "copied %d of %d rows in %d tables in %s (%.0f rows/s)\n",
		sum.Copied, sum.Total, len(p.last)-1, took.Round(time.Millisecond), rate)
}

// draw redraws the bars in place: the cursor goes back up over the lines
// the last update drew, and each line is cleared before it is written.
func (p *Progress) draw(ts []TableProgress) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	width := nameWidth(ts)
	for _, t := range ts {
		filled := 0
		if t.Total > 0 {
			filled = int(int64(barWidth) * t.Copied / t.Total)
		} else if t.Done() {
			filled = barWidth
		}
		fmt.Fprintf(&b, "\x1b[2K%-*s [%s%s] %s\n", width, t.Table,
			strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), figures(t))
	}
	p.drawn = len(ts)
	io.WriteString(p.w, b.String())
}

// lines prints a line per table whose state changed, and every LineEvery
// a line per table still copying and the total.
func (p *Progress) lines(ts []TableProgress, now time.Time) {
	width := nameWidth(ts)
	due := now.Sub(p.printed) >= LineEvery
	for _, t := range ts {
		changed := p.states[t.Table] != t.State
		p.states[t.Table] = t.State
		if changed || (due && (t.Table == total || !t.Done())) {
			fmt.Fprintf(p.w, "%-*s %s\n", width, t.Table, figures(t))
		}
	}
	if due {
		p.printed = now
	}
}

// figures formats a table's rows, percentage, rate, ETA and state.
func figures(t TableProgress) string {
	pct := 100.0
	if t.Total > 0 {
		pct = 100 * float64(t.Copied) / float64(t.Total)
	}
	s := fmt.Sprintf("%5.1f%% %d/%d rows %.0f rows/s", pct, t.Copied, t.Total, t.Rate)
	if t.ETA > 0 {
		s += " ETA " + t.ETA.String()
	}
	return s + " " + t.State
}

func nameWidth(ts []TableProgress) int {
	w := 0
	for _, t := range ts {
		w = max(w, len(t.Table))
	}
	return w
}

// rank orders the copy states from the least advanced.
func rank(state string) int {
	for i, s := range []string{StateWaiting, StateCopying, StateCopied, StateSynced, StateReady} {
		if s == state {
			return i
		}
	}
	return 0
}

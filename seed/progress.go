package seed

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports one phase (table) at a time: on a terminal a bar redrawn
// in place at most 10 times a second, otherwise a plain line every few
// seconds; both end the phase with a summary line.
type progress struct {
	w        io.Writer
	terminal bool

	table       string
	total       int64
	units, rows atomic.Int64
	start       time.Time
	stop        chan struct{}
	wg          sync.WaitGroup
}

const (
	terminalEvery = 100 * time.Millisecond
	plainEvery    = 5 * time.Second
)

func (p *progress) logf(format string, args ...any) {
	fmt.Fprintf(p.w, "seed: "+format+"\n", args...)
}

// begin starts reporting table, whose work is total units.
func (p *progress) begin(table string, total int64) {
	p.table, p.total, p.start = table, total, time.Now()
	p.units.Store(0)
	p.rows.Store(0)
	p.stop = make(chan struct{})
	every := plainEvery
	if p.terminal {
		every = terminalEvery
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
}

// add records units of work done and rows written; it is safe for
// concurrent use.
func (p *progress) add(units, rows int64) {
	p.units.Add(units)
	p.rows.Add(rows)
}

// end stops reporting the phase and prints its summary.
func (p *progress) end(rows int64, elapsed time.Duration, err error) {
	close(p.stop)
	p.wg.Wait()
	if p.terminal {
		if err == nil {
			p.units.Store(p.total)
		}
		p.draw()
		fmt.Fprintln(p.w)
	}
	if err != nil {
		p.logf("%s: failed after %s", p.table, elapsed.Round(time.Millisecond))
		return
	}
	p.logf("%-16s %12s rows in %8s  %10s rows/s", p.table, group(rows),
		elapsed.Round(time.Millisecond), group(perSecond(rows, elapsed)))
}

func (p *progress) draw() {
	units, rows := p.units.Load(), p.rows.Load()
	elapsed := time.Since(p.start)
	frac := 1.0
	if p.total > 0 {
		frac = min(1, float64(units)/float64(p.total))
	}
	eta := "--"
	if frac > 0.01 && frac < 1 {
		eta = (time.Duration(float64(elapsed)*(1-frac)/frac) / time.Second * time.Second).String()
	}
	rate := group(perSecond(rows, elapsed))
	if !p.terminal {
		p.logf("%s %3.0f%%  %s rows  %s rows/s  ETA %s", p.table, 100*frac, group(rows), rate, eta)
		return
	}
	const width = 30
	n := int(frac * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	fmt.Fprintf(p.w, "\r%-16s [%s] %3.0f%% %12s rows %10s rows/s  ETA %-8s\x1b[K",
		p.table, bar, 100*frac, group(rows), rate, eta)
}

func perSecond(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}

// group formats n with thousands separators: 24,012,345.
func group(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

package move

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// clock is a fake time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestProgress(t *testing.T) {
	steps := []struct {
		after time.Duration // since the previous update
		ts    []TableProgress
	}{
		{0, []TableProgress{{Table: "public.markets", State: StateWaiting, Total: 100}, {Table: "public.audit_log", State: StateWaiting, Total: 2000}}},
		{time.Second, []TableProgress{{Table: "public.markets", State: StateCopying, Copied: 50, Total: 100}, {Table: "public.audit_log", State: StateCopying, Copied: 500, Total: 2000}}},
		{time.Second, []TableProgress{{Table: "public.markets", State: StateReady, Copied: 100, Total: 100}, {Table: "public.audit_log", State: StateCopying, Copied: 1000, Total: 2000}}},
		{time.Second, []TableProgress{{Table: "public.markets", State: StateReady, Copied: 100, Total: 100}, {Table: "public.audit_log", State: StateCopying, Copied: 1500, Total: 2000}}},
		{6 * time.Second, []TableProgress{{Table: "public.markets", State: StateReady, Copied: 100, Total: 100}, {Table: "public.audit_log", State: StateReady, Copied: 2000, Total: 2000}}},
	}
	tests := []struct {
		terminal bool
		want     []string // in the output
		lines    int      // lines written
	}{
		// A bar per table and the total, five times; the cursor goes up
		// over the three lines before each redraw; then Done's line.
		{true, []string{"\x1b[3A", "\x1b[2K", "[###############---------------]", "total", "copied 2100 of 2100 rows in 2 tables in 9s"}, 5*3 + 1},
		// Every table and the total first, a line per state change, the
		// tables still copying after LineEvery, then Done's line.
		{false, []string{"public.audit_log  25.0% 500/2000 rows 500 rows/s ETA 3s copying", "copied 2100 of 2100 rows in 2 tables in 9s (233 rows/s)"}, 3 + 2 + 1 + 0 + 3 + 1},
	}
	for _, tt := range tests {
		name := "lines"
		if tt.terminal {
			name = "terminal"
		}
		t.Run(name, func(t *testing.T) {
			var out bytes.Buffer
			c := &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
			p := NewProgress(&out, tt.terminal)
			p.now = c.now
			var last []TableProgress
			for _, s := range steps {
				c.t = c.t.Add(s.after)
				last = p.Update(s.ts)
			}
			p.Done()
			got := out.String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, got)
				}
			}
			if n := strings.Count(got, "\n"); n != tt.lines {
				t.Errorf("output has %d lines, want %d:\n%s", n, tt.lines, got)
			}
			if sum := last[len(last)-1]; sum.Table != "total" || sum.Copied != 2100 || sum.State != StateReady {
				t.Errorf("Update's total = %+v, want 2100 rows ready", sum)
			}
		})
	}
}

func TestProgressRate(t *testing.T) {
	c := &clock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	p := NewProgress(&bytes.Buffer{}, false)
	p.now = c.now
	tests := []struct {
		after  time.Duration
		copied int64
		rate   float64
		eta    time.Duration
	}{
		{0, 0, 0, 0},
		{2 * time.Second, 1000, 500, 18 * time.Second},
		{2 * time.Second, 2000, 500, 16 * time.Second},
		// The rate covers the last rateWindow only: the window's first
		// update is at 4s (2000 rows), the one at 2s has left it.
		{12 * time.Second, 8000, 500, 4 * time.Second},
		// The window starts at the newest update at least rateWindow old.
		{2 * time.Second, 9000, 500, 2 * time.Second},
		{2 * time.Second, 10000, 8000.0 / 16, 0},
	}
	for i, tt := range tests {
		c.t = c.t.Add(tt.after)
		got := p.Update([]TableProgress{{Table: "t", State: StateCopying, Copied: tt.copied, Total: 10000}})[0]
		if got.Rate != tt.rate || got.ETA != tt.eta {
			t.Errorf("update %d: rate %v ETA %v, want %v and %v", i, got.Rate, got.ETA, tt.rate, tt.eta)
		}
	}
}

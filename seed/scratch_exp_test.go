package seed_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/seed"
)

func TestScratchExp(t *testing.T) {
	if os.Getenv("SEED_EXP") == "" {
		t.Skip()
	}
	t0 := time.Now()
	cfg := deploy(t, "exp", pgtest.OnePerRegion())
	t.Logf("deploy %s", time.Since(t0))
	d := open(t, cfg)
	run1 := func(name string, parallel int) {
		pw := &phaseWatch{port: pg.Port}
		opts := seed.Options{Markets: 8000, Days: 25, Seed: 1, Reset: true, Progress: pw, Parallel: parallel}
		if os.Getenv("SEED_TINY") != "" {
			opts.Markets, opts.Days = 200, 14
		}
		if os.Getenv("SEED_BIG") != "" {
			opts.Markets, opts.Days = 8000, 300
		}
		t0 := time.Now()
		stats, err := seed.Run(context.Background(), cfg, opts)
		if err != nil {
			t.Fatal(err)
		}
		p := stats[4]
		t.Logf("%-30s p=%d presences %d in %.1fs = %.0f rows/s; total %.1fs", name, parallel, p.Rows, p.Elapsed.Seconds(), float64(p.Rows)/p.Elapsed.Seconds(), time.Since(t0).Seconds())
		for _, l := range pw.lines {
			t.Log(l)
		}
	}
	sql := func(q string) {
		for _, c := range d.conns {
			if _, err := c.Exec(context.Background(), q); err != nil {
				t.Fatal(q, err)
			}
		}
	}
	for _, step := range strings.Split(os.Getenv("SEED_EXP"), ",") {
		switch step {
		case "notrig":
			sql("ALTER TABLE vendor_presences DISABLE TRIGGER presence_daily_insert")
		case "nocheck":
			sql("ALTER TABLE vendor_presences DROP CONSTRAINT vendor_presences_comune_check, DROP CONSTRAINT vendor_presences_check, DROP CONSTRAINT vendor_presences_kind_check, DROP CONSTRAINT vendor_presences_region_id_check, DROP CONSTRAINT vendor_presences_check1")
		case "novendoridx":
			sql("DROP INDEX vendor_presences_vendor")
		case "nouniq":
			sql("ALTER TABLE vendor_presences DROP CONSTRAINT vendor_presences_market_date_vendor, DROP CONSTRAINT vendor_presences_market_date_stall")
		default:
			var p int
			for _, c := range step {
				p = int(c - '0')
			}
			run1(os.Getenv("SEED_EXP"), p)
		}
	}
}

// phaseWatch records CPU seconds (postgres cluster, this process) between progress lines.
type phaseWatch struct {
	port         int
	lines        []string
	last         time.Time
	pgCPU, goCPU float64
}

func (w *phaseWatch) Write(p []byte) (int, error) {
	pc, gc := clusterCPU(w.port), selfCPU()
	now := time.Now()
	if !w.last.IsZero() {
		w.lines = append(w.lines, fmt.Sprintf("  wall %6.1fs pg %6.1fs go %5.1fs | %s", now.Sub(w.last).Seconds(), pc-w.pgCPU, gc-w.goCPU, strings.TrimSpace(string(p))))
	}
	w.last, w.pgCPU, w.goCPU = now, pc, gc
	return len(p), nil
}

func selfCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// clusterCPU sums the CPU seconds of the postmaster listening on port and all its children, living or reaped.
func clusterCPU(port int) float64 {
	ents, _ := os.ReadDir("/proc")
	type st struct {
		ppid, pid int
		own, kids float64
	}
	var all []st
	master := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		ppid, _ := strconv.Atoi(f[1])
		num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 }
		all = append(all, st{ppid, pid, num(11) + num(12), num(13) + num(14)})
		if cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); strings.Contains(string(cmd), "port="+strconv.Itoa(port)) && strings.Contains(string(cmd), "postgres") {
			master = pid
		}
	}
	total := 0.0
	for _, s := range all {
		if s.pid == master {
			total += s.own + s.kids
		} else if s.ppid == master {
			total += s.own
		}
	}
	return total
}

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/dmshub/dmsrouter/internal/pgcluster"
	"github.com/dmshub/dmsrouter/shardmap"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs       int
	CPUModel   string
	MemoryKiB  int64
	GoVersion  string
	GOMAXPROCS int
	Postgres   string
	LoadBefore string // /proc/loadavg when the run started
	LoadAfter  string // and when it ended
	// Busy is the share of the machine's CPU time in use during the run
	// (all processes), Own the share this process used, from /proc/stat
	// and getrusage.
	Busy, Own float64
}

// cpuStat is the machine's CPU time from the first line of /proc/stat, in
// clock ticks: busy (user, nice, system, irq, softirq, steal) and total.
type cpuStat struct{ busy, total int64 }

func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var st cpuStat
	for i, v := range f[1:min(len(f), 9)] {
		n, _ := strconv.ParseInt(v, 10, 64)
		st.total += n
		if i != 3 && i != 4 { // idle, iowait
			st.busy += n
		}
	}
	return st
}

func machine() Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GoVersion:  runtime.Version(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		LoadBefore: loadavg(),
	}
	m.CPUModel, _ = procField("/proc/cpuinfo", "model name")
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.MemoryKiB, _ = strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	}
	return m
}

// loadavg returns the three load averages of /proc/loadavg.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// memKiB returns a "VmRSS" or "VmHWM" value of /proc/self/status in KiB.
func memKiB(field string) int64 {
	v, _ := procField("/proc/self/status", field)
	n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	return n
}

// rssSampler records the largest VmRSS seen while it runs.
type rssSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	max  int64
}

func sampleRSS(every time.Duration) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.max = max(s.max, memKiB("VmRSS"))
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop stops sampling and returns the largest VmRSS seen, in KiB.
func (s *rssSampler) Stop() int64 {
	close(s.stop)
	s.done.Wait()
	return s.max
}

// Memory is the resident memory of the benchmark process, which holds the
// router, while the arms run.
type Memory struct {
	MaxRSSKiB int64 // largest VmRSS sampled while the arms ran
	HWMKiB    int64 // VmHWM (peak resident set) after the last run
}

// scaleTables are the tables whose rows Scale counts.
var scaleTables = []string{"markets", "stalls", "vendors", "concessions", "vendor_presences"}

// Scale counts the rows of each table over every shard of cfg, connecting
// with each shard's admin DSN, which must bypass row-level security (it
// returns an error otherwise, rather than counts of zero).
func Scale(ctx context.Context, cfg shardmap.Config) (map[string]int64, error) {
	var mu sync.Mutex
	total := map[string]int64{}
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range cfg.Shards {
		g.Go(func() error {
			conn, err := pgx.Connect(ctx, s.AdminDSN())
			if err != nil {
				return fmt.Errorf("count rows of shard %s: %w", s.Name, err)
			}
			defer conn.Close(context.Background())
			var bypass bool
			if err := conn.QueryRow(ctx, `SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&bypass); err != nil {
				return fmt.Errorf("count rows of shard %s: %w", s.Name, err)
			}
			if !bypass {
				return fmt.Errorf("count rows of shard %s: its admin DSN does not bypass row-level security", s.Name)
			}
			for _, t := range scaleTables {
				var n int64
				if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
					return fmt.Errorf("count rows of %s on shard %s: %w", t, s.Name, err)
				}
				mu.Lock()
				total[t] += n
				mu.Unlock()
			}
			return nil
		})
	}
	return total, g.Wait()
}

// postmaster returns the PID of the PostgreSQL server that dsn connects to,
// when it runs on this machine and the DSN's role may read its data
// directory setting; 0 otherwise.
func postmaster(ctx context.Context, dsn string) int {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0
	}
	defer conn.Close(context.Background())
	var dir string
	if err := conn.QueryRow(ctx, `SELECT current_setting('data_directory')`).Scan(&dir); err != nil {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(line))
	return pid
}

// serverCPU returns the CPU time used so far by the servers whose
// postmasters are pids and by their live children (backends, background
// workers), from /proc/<pid>/stat.
func serverCPU(pids map[int]bool) time.Duration {
	if len(pids) == 0 {
		return 0
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var total time.Duration
	for _, path := range stats {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		st, err := pgcluster.ProcessStat(pid)
		if err != nil || (!pids[pid] && !pids[st.PPID]) {
			continue
		}
		total += st.CPU
	}
	return total
}

// CPUMeter reads the CPU time used so far by this process and by a
// PostgreSQL server on this machine. The zero CPUMeter reads the process
// alone.
type CPUMeter struct {
	servers map[int]bool
}

// NewCPUMeter returns a meter of this process and of the server dsn
// connects to; the server's time reads 0 when it is not local.
func NewCPUMeter(ctx context.Context, dsn string) CPUMeter {
	m := CPUMeter{servers: map[int]bool{}}
	if pid := postmaster(ctx, dsn); pid != 0 {
		m.servers[pid] = true
	}
	return m
}

// Read returns the CPU time of this process and of the server's live
// processes so far.
func (m CPUMeter) Read() (process, server time.Duration) {
	return cpuTime(), serverCPU(m.servers)
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// RunQueueTime returns how long the process's threads have waited on a run
// queue so far: the second field of each /proc/self/task/*/schedstat
// (threads that exited are not counted; the Go runtime rarely ends one).
// It is exported for the benchmarks of other packages that report the
// same measure.
func RunQueueTime() time.Duration {
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var total time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) >= 2 {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			total += time.Duration(n)
		}
	}
	return total
}

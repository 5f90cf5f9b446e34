package pgcluster

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTick = 10 * time.Millisecond

// ProcStat is what ProcessStat reads of a process.
type ProcStat struct {
	PPID int
	CPU  time.Duration // user and system time so far, in clockTick steps
}

// ProcessStat reads process pid's parent and CPU time from
// /proc/<pid>/stat (Linux): how the benchmarks measure the CPU of a
// PostgreSQL server's processes on this machine, and how a server finds
// its postmaster's children to signal them.
func ProcessStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	return parseStat(b)
}

// parseStat parses a /proc/<pid>/stat line: pid (comm) state ppid ...
// utime stime (fields 14 and 15). comm may hold spaces and parentheses,
// so the fields are counted after the last ')'.
func parseStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("pgcluster: no command name in %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return ProcStat{}, fmt.Errorf("pgcluster: %d fields after the command name in %q", len(f), b)
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseInt(f[11], 10, 64)
	stime, err3 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return ProcStat{}, fmt.Errorf("pgcluster: bad fields in %q", b)
	}
	return ProcStat{PPID: ppid, CPU: time.Duration(utime+stime) * clockTick}, nil
}

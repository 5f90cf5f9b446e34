package pgcluster

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// A command name holding spaces and a parenthesis, as a process may
	// set its own (comm is at most 15 bytes, any bytes but NUL).
	line := "4242 (postgres: a) b) S 4100 4242 4242 0 -1 4194560 520 0 0 0 137 26 0 0 20 0 1 0 9000 1 2 3\n"
	st, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ProcStat{PPID: 4100, CPU: 163 * clockTick}); st != want {
		t.Errorf("parseStat = %+v, want %+v", st, want)
	}
	for _, bad := range []string{"", "4242 postgres S 1", "4242 (postgres) S 4100 1 2"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) parsed", bad)
		}
	}
}

func TestProcessStatOfThisProcess(t *testing.T) {
	for end := time.Now().Add(30 * time.Millisecond); time.Now().Before(end); {
	}
	st, err := ProcessStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PPID != os.Getppid() || st.CPU <= 0 {
		t.Errorf("ProcessStat(self) = %+v, want parent %d and some CPU", st, os.Getppid())
	}
}

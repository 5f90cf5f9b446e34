// Package clitest holds the test helpers of the two commands' tests
// (cmd/dmsrouter and cmd/dmsdev): a configuration written as the YAML file
// the commands read, and a buffer to watch a running command's output. Only
// tests import it.
package clitest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dmshub/dmsrouter/pgtest"
	"github.com/dmshub/dmsrouter/shardmap"
)

// WriteConfig writes the shard map cfg as the YAML the commands read,
// served on a free loopback port (its metrics on another) with pgtest.TestSecret as the HS256 secret, into a file under
// tb.TempDir, and returns its path.
func WriteConfig(tb testing.TB, cfg shardmap.Config) string {
	tb.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n  addr: %q\n  metrics_addr: %q\nauth:\n  hs256_secret: %q\nshards:\n", "127.0.0.1:0", "127.0.0.1:0", pgtest.TestSecret)
	for _, s := range cfg.Shards {
		fmt.Fprintf(&b, "  - name: %s\n    primary: %q\n    admin: %q\n    max_conns: 4\n", s.Name, s.Primary, s.Admin)
	}
	b.WriteString("regions:\n")
	for code, name := range cfg.Regions {
		fmt.Fprintf(&b, "  %q: %s\n", code, name)
	}
	path := filepath.Join(tb.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ReadFile returns the content of the file at path, failing tb if it
// cannot be read.
func ReadFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// NoEnv is the getenv of a command run with an empty environment.
func NoEnv(string) string { return "" }

// Buffer is a bytes.Buffer safe for one goroutine writing (a command's
// stdout or log) while another reads what it has written so far.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

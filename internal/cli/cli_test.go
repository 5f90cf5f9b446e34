package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
)

func TestDispatch(t *testing.T) {
	// echo takes one flag, -n, and writes it to stdout.
	echo := func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
		fs := NewFlags("prog", "echo", stderr)
		n := fs.String("n", "", "what to write")
		if err := ParseArgs(fs, args); err != nil {
			return err
		}
		_, err := io.WriteString(stdout, *n)
		return err
	}
	cmds := []Command{{Name: "echo", Summary: "write -n", Run: echo}}
	for _, tc := range []struct {
		name       string
		args       []string
		wantErr    bool
		wantStdout string // a substring of stdout
		wantStderr string // a substring of stderr
	}{
		{"runs the command", []string{"echo", "-n", "hi"}, false, "hi", ""},
		{"help to stdout", []string{"help"}, false, "usage: prog <command>", ""},
		{"--help to stdout", []string{"--help"}, false, "  echo     write -n", ""},
		{"no command", nil, true, "", "usage: prog <command>"},
		{"unknown command", []string{"nosuch"}, true, "", "commands:"},
		{"stray argument", []string{"echo", "-n", "hi", "extra"}, true, "", ""},
		{"unknown flag", []string{"echo", "-x"}, true, "", "flag provided but not defined: -x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Dispatch(context.Background(), "prog", cmds, tc.args, func(string) string { return "" }, &stdout, &stderr)
			if (err != nil) != tc.wantErr {
				t.Errorf("Dispatch(%q) = %v, want error: %v", tc.args, err, tc.wantErr)
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) || !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("Dispatch(%q) wrote stdout %q, stderr %q; want them to contain %q and %q",
					tc.args, stdout.String(), stderr.String(), tc.wantStdout, tc.wantStderr)
			}
		})
	}
}

func TestParseArgsHelp(t *testing.T) {
	fs := NewFlags("prog", "echo", io.Discard)
	if err := ParseArgs(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("ParseArgs(-h) = %v, want flag.ErrHelp (main prints nothing more for it)", err)
	}
}

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
		wantErr    string // a substring of the error; "" for none
		wantStdout string // a substring of stdout
		wantStderr string // a substring of stderr
	}{
		{"runs the command", []string{"echo", "-n", "hi"}, "", "hi", ""},
		{"help to stdout", []string{"help"}, "", "usage: prog <command>", ""},
		{"--help to stdout", []string{"--help"}, "", "  echo     write -n", ""},
		{"command's -h: usage and flags to stdout", []string{"echo", "-h"}, "", "usage: prog echo [flags]\n\nflags:\n  -n string\n", ""},
		{"command's --help after a flag", []string{"echo", "-n", "hi", "--help"}, "", "  -n string", ""},
		{"no command", nil, "no command given", "", "usage: prog <command>"},
		{"unknown command", []string{"nosuch"}, `unknown command "nosuch"`, "", "commands:"},
		{"stray argument", []string{"echo", "-n", "hi", "extra"}, `echo: unexpected arguments ["extra"]`, "", ""},
		{"unknown flag", []string{"echo", "-x"}, "echo: flag provided but not defined: -x (prog echo --help lists the flags)", "", ""},
		{"flag without value", []string{"echo", "-n"}, "flag needs an argument: -n", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Dispatch(context.Background(), "prog", cmds, tc.args, func(string) string { return "" }, &stdout, &stderr)
			switch {
			case tc.wantErr == "" && err != nil, tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Dispatch(%q) = %v, want error %q", tc.args, err, tc.wantErr)
			case err != nil && strings.Contains(stderr.String(), strings.TrimPrefix(err.Error(), "echo: ")):
				// Main prints the error: a second report is noise.
				t.Errorf("Dispatch(%q) = %v and wrote it to stderr too:\n%s", tc.args, err, stderr.String())
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

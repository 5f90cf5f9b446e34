package router

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// readmeExample is a request of the README and the answer it documents.
type readmeExample struct {
	line         int // of the request in README.md
	method, path string
	header       []string // name, value pairs, Authorization left out
	body         string
	status       int
	answer       string
}

// readmeExamples returns the examples of the README in order: every ```http
// block that holds a request, paired with the ```http block after it, which
// holds its answer (HTTP/1.1 <status> ..., headers, a blank line, JSON).
func readmeExamples(t *testing.T, path string) []readmeExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type block struct {
		line  int
		lines []string
	}
	var (
		blocks []block
		cur    *block
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		switch {
		case cur == nil && text == "```http":
			cur = &block{line: n + 1}
		case cur != nil && text == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, text)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	// split returns a block's first line, headers and body.
	split := func(b block) (string, []string, string) {
		end := slices.Index(b.lines, "")
		if end < 0 {
			end = len(b.lines)
		}
		body := ""
		if end < len(b.lines) {
			body = strings.Join(b.lines[end+1:], "\n")
		}
		return b.lines[0], b.lines[1:end], body
	}
	var out []readmeExample
	for i := 0; i < len(blocks); i++ {
		first, headers, body := split(blocks[i])
		method, target, ok := strings.Cut(first, " ")
		if !ok || strings.HasPrefix(first, "HTTP/") {
			t.Fatalf("README.md:%d: want a request line METHOD /path, got %q", blocks[i].line, first)
		}
		ex := readmeExample{line: blocks[i].line, method: method, path: target, body: body}
		for _, h := range headers {
			name, value, _ := strings.Cut(h, ": ")
			if name != "Authorization" {
				ex.header = append(ex.header, name, value)
			}
		}
		if i+1 == len(blocks) || !strings.HasPrefix(blocks[i+1].lines[0], "HTTP/1.1 ") {
			t.Fatalf("README.md:%d: the request has no answer block after it", blocks[i].line)
		}
		i++
		status, _, body := split(blocks[i])
		fields := strings.Fields(status)
		if ex.status, err = strconv.Atoi(fields[1]); err != nil {
			t.Fatalf("README.md:%d: bad status line %q", blocks[i].line, status)
		}
		ex.answer = body
		out = append(out, ex)
	}
	return out
}

// TestReadmeBodies runs the README's request examples in order on a fresh
// deployment of the fixture, as a regional principal whose sub is
// regione-lombardia, and wants each documented status and answer: the same
// keys with the same values (answerDiff).
func TestReadmeBodies(t *testing.T) {
	examples := readmeExamples(t, "../README.md")
	if len(examples) < 11 {
		t.Fatalf("README.md has %d request examples, want one per write (11)", len(examples))
	}
	e := newEnv(t, "readme", false)
	e.addToken(t, "regione-lombardia", "admin_pa", "region:03")
	for _, ex := range examples {
		r := e.do(t, "regione-lombardia", ex.method, ex.path, ex.body, ex.header...)
		what := fmt.Sprintf("README.md:%d %s %s", ex.line, ex.method, ex.path)
		if r.status != ex.status {
			t.Errorf("%s = %d %s, want %d", what, r.status, r.raw, ex.status)
			continue
		}
		var want, got any
		if err := json.Unmarshal([]byte(ex.answer), &want); err != nil {
			t.Errorf("%s: the documented answer is not JSON: %v", what, err)
			continue
		}
		if err := json.Unmarshal([]byte(r.raw), &got); err != nil {
			t.Fatalf("%s: answer %q: %v", what, r.raw, err)
		}
		if diffs := answerDiff("", want, got); len(diffs) > 0 {
			t.Errorf("%s: the answer %s differs from the documented one:\n%s", what, r.raw, strings.Join(diffs, "\n"))
		}
	}
}

// answerDiff lists where the JSON value got differs from want: a key of an
// object missing or not documented, an array of another length, another
// value.
func answerDiff(at string, want, got any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: %v, want an object", at, got)}
		}
		var out []string
		for k, v := range w {
			if _, ok := g[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", at, k))
				continue
			}
			out = append(out, answerDiff(at+"."+k, v, g[k])...)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				out = append(out, fmt.Sprintf("%s.%s: not documented", at, k))
			}
		}
		slices.Sort(out)
		return out
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: %v, want %d elements", at, got, len(w))}
		}
		var out []string
		for i := range w {
			out = append(out, answerDiff(at+"["+strconv.Itoa(i)+"]", w[i], g[i])...)
		}
		return out
	}
	if want != got {
		return []string{fmt.Sprintf("%s: %v, want %v", at, got, want)}
	}
	return nil
}

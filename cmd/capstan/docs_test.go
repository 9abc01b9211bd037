package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/schema"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docSnippet is one fenced block of a page of the docs.
type docSnippet struct {
	page string // "docs/descriptor.md"
	line int    // line of the opening fence
	lang string // "cue", "yaml"
	text string
}

// docSnippets returns the fenced blocks of README.md and docs/*.md whose
// info string is one of langs.
func docSnippets(t *testing.T, langs ...string) []docSnippet {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append([]string{"../../README.md"}, pages...)
	var out []docSnippet
	for _, page := range pages {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		var (
			cur docSnippet
			in  bool
		)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			switch {
			case in && strings.HasPrefix(line, "```"):
				if slices.Contains(langs, cur.lang) {
					out = append(out, cur)
				}
				in = false
			case in:
				cur.text += line + "\n"
			case strings.HasPrefix(line, "```"):
				cur = docSnippet{page: strings.TrimPrefix(page, "../../"), line: n, lang: strings.TrimPrefix(line, "```")}
				in = true
			}
		}
		if in {
			t.Errorf("%s:%d: fenced block never closed", cur.page, cur.line)
		}
	}
	return out
}

// A descriptor the docs show must pass the schema as the reader copies it:
// every fenced cue block is a whole descriptor file (top-level apps, no
// "..." elisions), and so is every yaml block that starts with apps:. The
// snippets failed before this test: one left out a container's image, one
// elided a pod group with "...", one was a bare files: field. Files a
// snippet names with from: belong to the reader's repository, so the check
// is schema.Load (what capstan validate runs before it reads those files).
func TestDocsDescriptorSnippetsValidate(t *testing.T) {
	snippets := docSnippets(t, "cue", "yaml")
	checked := 0
	for _, s := range snippets {
		if s.lang == "yaml" && !strings.HasPrefix(s.text, "apps:") {
			continue // a repository, forge or notification config
		}
		checked++
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "snippet."+s.lang), []byte(s.text), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := schema.Load(os.DirFS(dir), schema.LoadOptions{})
		if err != nil {
			t.Errorf("%s:%d: %v", s.page, s.line, err)
			continue
		}
		for _, e := range res.AllErrors() {
			t.Errorf("%s:%d: the %s snippet does not validate: %s", s.page, s.line, s.lang, e)
		}
		if len(res.Apps) == 0 {
			t.Errorf("%s:%d: the %s snippet declares no app", s.page, s.line, s.lang)
		}
	}
	// The pages show at least the descriptor, volume, job, secret and
	// preview examples; fewer means the reader above lost them.
	if checked < 7 {
		t.Errorf("checked %d descriptor snippets in the docs, want at least 7", checked)
	}
}

// A flag whose help names its default in words and also has a default
// value printed two: 'capstan rollback --help' said '(default: the one
// sync tracks) (default "main")'. Every command's help names one.
func TestHelpNamesOneDefaultPerFlag(t *testing.T) {
	twice := regexp.MustCompile(`\(default[^)]*\)\s+\(default`)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			one := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
			one.AddFlag(f)
			if line := one.FlagUsages(); twice.MatchString(line) {
				t.Errorf("%s: the help names two defaults:\n%s", c.CommandPath(), line)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}

// A capstan command the docs or a command's --help examples give must run
// as written: its command exists, and its flags and argument count are
// the command's. Every `capstan ...` line of the sh blocks of README.md and
// docs/*.md (after an optional "$ " or "sudo ", up to a comment, pipe,
// redirection or "&&"), every "$ capstan ..." line of their other blocks
// (a terminal session: the rest of the block is output) and of every
// Example is parsed, not run.
func TestDocsCommandLinesParse(t *testing.T) {
	type cmdLine struct{ where, line string }
	var lines []cmdLine
	// add adds the lines of text, a line ending in \ joined to the next.
	add := func(where func(i int) string, text string) {
		cont := ""
		for i, l := range strings.Split(text, "\n") {
			if cut, ok := strings.CutSuffix(l, "\\"); ok {
				cont += cut
				continue
			}
			lines = append(lines, cmdLine{where(i), cont + l})
			cont = ""
		}
	}
	for _, s := range docSnippets(t, "sh", "") {
		text := s.text
		if s.lang == "" {
			text = sessionCommands(text)
		}
		add(func(i int) string { return fmt.Sprintf("%s:%d", s.page, s.line+1+i) }, text)
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		add(func(int) string { return c.CommandPath() + " --help" }, c.Example)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	checked := 0
	for _, l := range lines {
		args, ok := capstanArgs(l.line)
		if !ok {
			continue
		}
		checked++
		root := newRootCmd()
		cmd, rest, err := root.Find(args)
		if err == nil && (cmd == root || cmd.Hidden) {
			err = fmt.Errorf("no command") // a hidden one says to do otherwise (kubectlVerb)
		}
		if err == nil {
			err = cmd.ParseFlags(rest)
		}
		if err == nil && cmd.Args != nil {
			err = cmd.Args(cmd, cmd.Flags().Args())
		}
		if err != nil {
			t.Errorf("%s: %q does not parse: %v", l.where, strings.TrimSpace(l.line), err)
		}
	}
	if checked < 40 {
		t.Errorf("checked %d capstan command lines, want at least 40: the reader lost them", checked)
	}
}

// sessionCommands keeps the command lines ("$ ...") of a block that shows
// a terminal session, and blanks its output lines (so line numbers stay).
func sessionCommands(text string) string {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "$ ") {
			lines[i] = ""
		}
	}
	return strings.Join(lines, "\n")
}

// capstanArgs returns the arguments of a shell line that runs capstan.
func capstanArgs(line string) ([]string, bool) {
	line = strings.TrimSpace(line)
	for _, p := range []string{"$ ", "sudo ", "bin/"} {
		line = strings.TrimPrefix(line, p)
	}
	if !strings.HasPrefix(line, "capstan ") {
		return nil, false
	}
	for _, stop := range []string{" #", " |", " >", " &&", " ;", " <<"} {
		if i := strings.Index(line, stop); i >= 0 {
			line = line[:i]
		}
	}
	var args []string
	var cur strings.Builder
	quote, in := byte(0), false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, in = ch, true
		case ch == ' ' || ch == '\t':
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(ch)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args[1:], true
}

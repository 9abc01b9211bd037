package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/capstanhq/capstan/forge/notify"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/crypto/ssh"
)

// docProse calls fn with every line of README.md and docs/*.md outside
// fenced blocks, and every line of the blocks whose info string is one
// of langs, with its page and line number.
func docProse(t *testing.T, fn func(where, line string, inBlock bool), langs ...string) {
	t.Helper()
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, page := range append([]string{"../../README.md"}, pages...) {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		in, lang := false, ""
		sc := bufio.NewScanner(bytes.NewReader(data))
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if strings.HasPrefix(line, "```") {
				if !in {
					lang = strings.TrimPrefix(line, "```")
				}
				in = !in
				continue
			}
			where := fmt.Sprintf("%s:%d", strings.TrimPrefix(page, "../../"), n)
			switch {
			case !in:
				fn(where, line, false)
			case slices.Contains(langs, lang):
				fn(where, line, true)
			}
		}
	}
}

// flagOf returns cmd's flag (its own or inherited) named as the docs
// write it: --name or -x.
func flagOf(cmd *cobra.Command, name string) *pflag.Flag {
	for _, set := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
		if long, ok := strings.CutPrefix(name, "--"); ok {
			if f := set.Lookup(long); f != nil {
				return f
			}
		} else if f := set.ShorthandLookup(strings.TrimPrefix(name, "-")); f != nil {
			return f
		}
	}
	return nil
}

var docFlag = regexp.MustCompile(`^-(-[a-z0-9][a-z0-9-]*|[a-zA-Z])(=|$)`)

// A command the prose names is one a reader types: `capstan get volumes
// --app APP` in a sentence or a table, a synopsis such as "capstan image
// pack DIR --entrypoint CMD [--push]" in a block. Those are not whole
// command lines (placeholders, [optional] parts, a bare "capstan logs"
// naming the command), so TestDocsCommandLinesParse cannot parse them;
// this test checks what they promise: the command exists and has every
// flag they name.
func TestDocsNamedCommandsAndFlagsExist(t *testing.T) {
	span := regexp.MustCompile("`(capstan [^`]*)`")
	checked := 0
	check := func(where, text string) {
		args, ok := capstanArgs(text)
		if !ok || len(args) > 0 && strings.HasSuffix(args[0], ":") {
			return // output: "capstan plan: main (4a3938f1c2d0) -> ..."
		}
		checked++
		root := newRootCmd()
		root.InitDefaultCompletionCmd() // as Execute does
		// The command's words come first (after global flags such as
		// --config FILE): lower-case words, up to a placeholder (APP,
		// [--flag], a|b, shop/POD) or a flag.
		var words []string
		for i := 0; i < len(args); i++ {
			a := args[i]
			if m := docFlag.FindStringSubmatch(a); len(words) == 0 && m != nil && flagOf(root, "-"+m[1]) != nil {
				f := flagOf(root, "-"+m[1])
				if f.NoOptDefVal == "" && !strings.Contains(a, "=") {
					i++ // its value
				}
				continue
			}
			if strings.HasPrefix(a, "-") || strings.ContainsAny(a, "[]|./:=<>") || strings.ToLower(a) != a {
				break
			}
			words = append(words, a)
		}
		cmd, _, err := root.Find(words)
		if err != nil || cmd == root || cmd.Hidden { // a hidden one says to do otherwise (kubectlVerb)
			t.Errorf("%s: %q: no such command (%v)", where, text, err)
			return
		}
		for _, a := range args {
			for _, alt := range strings.Split(a, "|") { // [-f|--follow]
				alt = strings.Trim(alt, "[](),'\\")
				m := docFlag.FindStringSubmatch(alt)
				if m == nil {
					continue
				}
				if name := "-" + m[1]; flagOf(cmd, name) == nil {
					t.Errorf("%s: %q: %s has no flag %s", where, text, cmd.CommandPath(), name)
				}
			}
		}
	}
	cont := "" // an indented command line ending in \ and what follows
	docProse(t, func(where, line string, inBlock bool) {
		if inBlock {
			check(where, line)
			return
		}
		if code, ok := strings.CutPrefix(line, "    "); ok { // an indented code block
			if head, more := strings.CutSuffix(code, "\\"); more {
				cont += head
				return
			}
			check(where, cont+code)
			cont = ""
			return
		}
		for _, m := range span.FindAllStringSubmatch(line, -1) {
			check(where, m[1])
		}
	}, "") // the sh blocks are TestDocsCommandLinesParse's
	if checked < 200 {
		t.Errorf("checked %d capstan commands in the prose, want at least 200: the reader lost them", checked)
	}
}

// A flag table (| `--flag` | default | meaning |) is where a reader
// looks up a default: every flag in it must be the command's, and a
// default written as one value must be the flag's. up.md said "none" for
// --branch, --path and --poll-interval, whose defaults are main, "." and
// 15s. Defaults written in words ("the host name", "30 s") are left to
// the reader of the help.
func TestDocsFlagTables(t *testing.T) {
	// The command each page's flag tables are about.
	pages := map[string][]string{
		"docs/up.md":           {"up"},
		"docs/agent.md":        {"agent"},
		"docs/plan.md":         {"plan"},
		"docs/ha.md":           {"server"},
		"docs/architecture.md": {"server"},
	}
	name := regexp.MustCompile("`(--[a-z0-9-]+|-[a-z])")
	same := map[string]string{"off": "false", "none": ""}
	checked := 0
	docProse(t, func(where, line string, _ bool) {
		page, _, _ := strings.Cut(where, ":")
		path, ok := pages[page]
		if !ok || !strings.HasPrefix(line, "| `-") {
			return
		}
		cmd, _, err := newRootCmd().Find(path)
		if err != nil {
			t.Fatal(err)
		}
		cells := strings.Split(line, " | ")
		for _, m := range name.FindAllStringSubmatch(cells[0], -1) {
			checked++
			f := flagOf(cmd, m[1])
			if f == nil {
				t.Errorf("%s: %s has no flag %s", where, cmd.CommandPath(), m[1])
				continue
			}
			if len(cells) < 3 {
				continue
			}
			doc := strings.TrimSpace(cells[1])
			if strings.ContainsAny(doc, " ,(") {
				continue // in words
			}
			doc = strings.Trim(doc, "`")
			if v, ok := same[doc]; ok {
				doc = v
			}
			def := strings.Trim(f.DefValue, "[]")
			if m := usageDefault.FindStringSubmatch(f.Usage); def == "" && m != nil {
				def = m[1] // "(default capstan0)", set in code
			}
			if def == "0" && doc == "" {
				continue
			}
			if doc != def {
				t.Errorf("%s: %s %s: the table's default is %q, the flag's %q", where, cmd.CommandPath(), m[1], strings.TrimSpace(cells[1]), f.DefValue)
			}
		}
	})
	if checked < 50 {
		t.Errorf("checked %d flags in the docs' flag tables, want at least 50: the reader lost them", checked)
	}
}

// usageDefault finds the default a flag's help names when the flag's
// value is empty and the code sets it.
var usageDefault = regexp.MustCompile(`\(default:? ([^ ),;]+)[),;]`)

// A config file the docs show must load as the reader copies it: the
// repository configs (--repo-config, repos:) through gitsync.LoadConfig,
// the notification configs (--notify-config, webhooks:) through
// notify.LoadConfig, with the files they name present (a webhook secret,
// a token, trusted keys) and their commented-out options switched on.
func TestDocsConfigSnippetsParse(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"webhook-secret":      "a webhook secret\n",
		"git-password":        "a password\n",
		"forge-token":         "a token\n",
		"release.asc":         armoredKey(t),
		"allowed_signers.pub": sshKey(t),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// "      # apiURL: ..." is an option the reader may switch on.
	commented := regexp.MustCompile(`(?m)^(\s*)# (\s*[a-zA-Z]+:)`)
	counts := map[string]int{}
	for _, s := range docSnippets(t, "yaml") {
		text := strings.ReplaceAll(s.text, "/etc/capstan/", dir+"/")
		text = commented.ReplaceAllString(text, "$1$2")
		file := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(text, "repos:"):
			_, err = gitsync.LoadConfig(file, gitsync.Defaults{})
		case strings.HasPrefix(text, "webhooks:"):
			_, err = notify.LoadConfig(file)
		default:
			continue // a descriptor, a secret file, a CI step
		}
		counts[strings.Fields(text)[0]]++
		if err != nil {
			t.Errorf("%s:%d: the config does not load: %v\n%s", s.page, s.line, err, text)
		}
	}
	if counts["repos:"] < 2 || counts["webhooks:"] < 1 {
		t.Errorf("checked %v config snippets, want at least 2 repository configs and 1 notification config: the reader lost them", counts)
	}
}

// armoredKey returns a new OpenPGP public key, ASCII armored.
func armoredKey(t *testing.T) string {
	t.Helper()
	e, err := openpgp.NewEntity("Release", "", "release@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sshKey returns a new SSH public key, an authorized_keys line.
func sshKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(ssh.MarshalAuthorizedKey(key))
}

// The output sample of up.md is what 'capstan up' prints once the
// cluster is up, for the data directory, node address and services it
// shows: the lines a newcomer follows next.
func TestDocsUpNextSteps(t *testing.T) {
	var sample string
	for _, s := range docSnippets(t, "") {
		if s.page == "docs/up.md" && strings.HasPrefix(s.text, "✓ data directory ") {
			sample = s.text
		}
	}
	_, want, ok := strings.Cut(sample, "\nCapstan is up.")
	if !ok {
		t.Fatal("docs/up.md has no output sample of capstan up ending in 'Capstan is up. ...'")
	}
	var b strings.Builder
	nextSteps(&b, "/var/lib/capstan", "/var/lib/capstan/admin.yaml", "/var/lib/capstan/demo-repo",
		[]nodePortURL{{url: "http://10.0.0.5:30000/", service: "shop/frontend"}})
	_, got, _ := strings.Cut(b.String(), "\nCapstan is up.")
	if got != want {
		t.Errorf("docs/up.md's sample ends\n%s\nbut capstan up prints\n%s", want, got)
	}
}

// up.md lists what 'make deps' installs: every Debian package of the
// Makefile's APT_PKGS. It had left out kmod, which the service proxy
// needs to load br_netfilter.
func TestDocsMakeDepsPackages(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var pkgs []string
	for _, l := range strings.Split(string(mk), "\n") {
		if rest, ok := strings.CutPrefix(l, "APT_PKGS"); ok {
			_, list, _ := strings.Cut(rest, "=")
			pkgs = strings.Fields(list)
		}
	}
	if len(pkgs) < 5 {
		t.Fatalf("found %d packages in the Makefile's APT_PKGS, want at least 5: the reader lost them", len(pkgs))
	}
	page, err := os.ReadFile("../../docs/up.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(page), "## `make up`")
	section, _, _ = strings.Cut(section, "\n## ")
	named := regexp.MustCompile(`[a-z0-9][a-z0-9-]*`).FindAllString(section, -1)
	for _, p := range pkgs {
		if !slices.Contains(named, p) {
			t.Errorf("docs/up.md's make up section does not name %s, which make deps installs", p)
		}
	}
}

// A descriptor field the docs' field tables list (| `field` | type |
// default | meaning |) is the schema's, and a default written as one
// value is the schema's default (`replicas: *1 | ...`).
func TestDocsDescriptorFieldTables(t *testing.T) {
	src := string(schema.Source())
	field := regexp.MustCompile("^\\| `(?:[a-z]+: <[a-z]+>: )?([a-zA-Z.]+)")
	checked := 0
	for _, page := range []string{"docs/descriptor.md", "docs/jobs.md"} {
		docProse(t, func(where, line string, _ bool) {
			if !strings.HasPrefix(where, page+":") {
				return
			}
			m := field.FindStringSubmatch(line)
			if m == nil {
				return
			}
			name := m[1][strings.LastIndex(m[1], ".")+1:]
			decl := regexp.MustCompile(`(?m)^\s*"?` + name + `"?[?!]?:\s*(.*)$`).FindStringSubmatch(src)
			if decl == nil {
				if !strings.HasPrefix(name, "Benchmark") {
					t.Errorf("%s: field %s is not in the schema", where, m[1])
				}
				return
			}
			checked++
			cells := strings.Split(line, " | ")
			def := regexp.MustCompile(`^\*("[^"]*"|[^ |]+)`).FindStringSubmatch(decl[1])
			if len(cells) < 3 || def == nil {
				return
			}
			for _, c := range cells[1:min(3, len(cells)-1)] { // | field | [type |] default | meaning |
				if v, ok := strings.CutPrefix(strings.TrimSpace(c), "`"); ok && strings.Count(c, "`") == 2 && strings.HasSuffix(v, "`") {
					if v = strings.TrimSuffix(v, "`"); v != def[1] {
						t.Errorf("%s: field %s: the table's default is %s, the schema's %s", where, m[1], v, def[1])
					}
				}
			}
		})
	}
	if checked < 40 {
		t.Errorf("checked %d descriptor fields in the docs' tables, want at least 40: the reader lost them", checked)
	}
}

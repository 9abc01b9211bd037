package plan

import (
	"fmt"
	"html"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/capstanhq/capstan/apiserver/api"
)

// maxValue bounds a value printed in a field change; longer ones (a probe
// as JSON, a long env value) are cut with "...".
const maxValue = 80

func clip(s string) string {
	if r := []rune(s); len(r) > maxValue {
		return string(r[:maxValue-3]) + "..."
	}
	return s
}

// String renders the change without its subject: "replicas 3 -> 5",
// "image a:v1 -> :v2", "env BACKEND_URL added (\"http://backend\")",
// followed by its note.
func (f Field) String() string {
	if f.Note != "" {
		return f.values() + "; " + f.Note
	}
	return f.values()
}

func (f Field) values() string {
	switch f.Op {
	case Added:
		if f.New == "" {
			return f.Name + " added"
		}
		return f.Name + " added (" + clip(f.New) + ")"
	case Removed:
		if f.Old == "" {
			return f.Name + " removed"
		}
		return f.Name + " removed (was " + clip(f.Old) + ")"
	case Changed:
		if f.Old == "" && f.New == "" {
			return f.Name + " changed"
		}
		n := f.New
		if f.Name == "image" {
			n = shortImage(f.Old, f.New)
		}
		return f.Name + " " + clip(f.Old) + " -> " + clip(n)
	}
	return f.Name + " " + clip(f.New)
}

// Line renders the change with its subject: "frontend: replicas 3 -> 5".
func (f Field) Line() string { return f.Subject + ": " + f.String() }

func revision(r Revision) string {
	c := api.ShortCommit(r.Commit)
	switch {
	case c != "" && len(r.Ref) > len(c) && r.Ref == r.Commit:
		return c // a SHA (the merge base of --pr): shortened like the rest
	case c == "" || strings.HasPrefix(r.Ref, c):
		return r.Ref
	case r.Ref == "":
		return c
	}
	return r.Ref + " (" + c + ")"
}

// summary is the one-line verdict: validity, app counts, capacity.
func (p *Plan) summary() []string {
	var parts []string
	if p.Valid() {
		parts = append(parts, "head is valid")
	} else {
		parts = append(parts, "head is invalid ("+api.Plural(len(p.Errors), "error")+")")
	}
	var counts []string
	for _, s := range []AppStatus{AppAdded, AppChanged, AppRemoved, AppRejected, AppNotOwned, AppUnchanged} {
		if n := p.Count(s); n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, s))
		}
	}
	if len(counts) == 0 {
		parts = append(parts, "no apps")
	} else {
		parts = append(parts, "apps: "+strings.Join(counts, ", "))
	}
	if len(p.ChangedFiles) > 0 {
		parts = append(parts, api.Plural(len(p.ChangedFiles), "file")+" changed")
	}
	if p.Held != "" {
		parts = append(parts, p.Held)
	}
	if n := p.dataLoss(); n > 0 {
		parts = append(parts, "persistent data of "+api.Plural(n, "workload")+" deleted")
	}
	parts = append(parts, p.capacitySummary())
	return parts
}

// dataLoss counts the removed workloads whose persistent volumes go with
// them (reclaim delete).
func (p *Plan) dataLoss() int {
	n := 0
	for _, a := range p.Apps {
		for _, o := range a.Objects {
			if o.Op == Removed && slices.ContainsFunc(o.Fields, func(f Field) bool { return strings.HasSuffix(f.New, dataDeleted) }) {
				n++
			}
		}
	}
	return n
}

func (p *Plan) capacitySummary() string {
	c := p.Capacity
	if c == nil {
		return p.CapacityNote
	}
	pods, fit := c.Pods()
	switch {
	case pods == 0:
		return "capacity: no new pods to place"
	case fit == pods:
		return fmt.Sprintf("capacity: all %s fit", api.Plural(pods, "new pod"))
	}
	return fmt.Sprintf("capacity: %d of %s do not fit", pods-fit, api.Plural(pods, "new pod"))
}

func objectTitle(o Object) string {
	return kindName(o) + " " + o.Name
}

func kindName(o Object) string { return strings.ToLower(o.Kind.Singular()) }

func opMark(op Op) string {
	switch op {
	case Added:
		return "+"
	case Removed:
		return "-"
	}
	return "~"
}

func (a App) title() string {
	s := "app " + a.Name + ": " + string(a.Status)
	if a.Status == AppRejected {
		s += ", " + api.Plural(len(a.Errors), "error")
	}
	if a.Note != "" {
		s += " (" + a.Note + ")"
	}
	return s
}

func nodesPlaced(m map[string]int) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s: %d", n, m[n]))
	}
	return strings.Join(parts, ", ")
}

func (pl Placement) fitText() string {
	s := fmt.Sprintf("%d fit", pl.Fit)
	if pl.Fit > 0 {
		s += " (" + nodesPlaced(pl.Nodes) + ")"
	}
	return s
}

func (pl Placement) unfitTexts() []string {
	var out []string
	for _, u := range pl.Unfit {
		out = append(out, fmt.Sprintf("%d do not: %s", u.Pods, u.Message))
	}
	return out
}

func (pl Placement) podsText() string {
	s := api.Plural(pl.Pods, "pod")
	if pl.Freed > 0 {
		s += " (" + api.Plural(pl.Freed, "old pod") + " freed)"
	}
	return s
}

func (c *Capacity) header() string {
	s := fmt.Sprintf("%s (%d ready)", api.Plural(c.Nodes, "node"), c.Ready)
	if c.Freed > 0 {
		s += ", " + api.Plural(c.Freed, "live pod") + " freed by the change"
	}
	return s
}

// RenderText renders p for a terminal. Descriptor content (values, file
// diffs, paths) may hold escape sequences; every character a terminal
// would act on is shown escaped ("\x1b", "\r"), ordinary UTF-8 as is.
func RenderText(p *Plan) string {
	return printable(renderText(p), "\n\t")
}

func renderText(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "capstan plan: %s -> %s\n", revision(p.Base), revision(p.Head))
	b.WriteString(strings.Join(p.summary(), "; ") + "\n")
	if len(p.Errors) > 0 {
		b.WriteString("\nerrors:\n")
		for _, e := range p.Errors {
			b.WriteString("  " + e.String() + "\n")
		}
	}
	for _, a := range p.Apps {
		if a.Status == AppUnchanged {
			continue
		}
		b.WriteString("\n" + a.title() + "\n")
		for _, o := range a.Objects {
			fmt.Fprintf(&b, "  %s %s\n", opMark(o.Op), objectTitle(o))
			for _, f := range o.Fields {
				b.WriteString("      " + f.Line() + "\n")
				if f.Diff != "" {
					b.WriteString("          " + strings.ReplaceAll(f.Diff, "\n", "\n          ") + "\n")
				}
			}
		}
	}
	if c := p.Capacity; c != nil {
		fmt.Fprintf(&b, "\ncapacity on %s:\n", c.header())
		if len(c.Workloads) == 0 {
			b.WriteString("  no new pods to place\n")
		}
		for _, pl := range c.Workloads {
			parts := append([]string{pl.fitText()}, pl.unfitTexts()...)
			fmt.Fprintf(&b, "  %s/%s: %s: %s\n", pl.App, pl.Workload, pl.podsText(), strings.Join(parts, "; "))
		}
	}
	return b.String()
}

// RenderMarkdown renders p as a pull-request comment: a heading, a summary
// line, the errors in a fenced block, a table of changes per app and the
// capacity dry run.
func RenderMarkdown(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Capstan plan: %s -> %s\n\n", code(revision(p.Base)), code(revision(p.Head)))
	parts := p.summary()
	for i, part := range parts {
		if strings.HasPrefix(part, "persistent data of ") || part == p.Held {
			parts[i] = "**" + part + "**"
		}
	}
	if p.Valid() {
		parts[0] = "**Valid**"
	} else {
		parts[0] = "**Invalid** (" + api.Plural(len(p.Errors), "error") + ")"
	}
	b.WriteString(strings.Join(parts, " · ") + "\n")
	if len(p.Errors) > 0 {
		var lines []string
		for _, e := range p.Errors {
			lines = append(lines, e.String())
		}
		b.WriteString("\n#### Errors\n\n" + fenced(strings.Join(lines, "\n")))
	}
	for _, a := range p.Apps {
		if a.Status == AppUnchanged {
			continue
		}
		fmt.Fprintf(&b, "\n#### App %s: %s\n\n", code(a.Name), a.Status)
		if a.Status == AppRejected {
			b.WriteString(cell(upperFirst(a.Note)+"; "+api.Plural(len(a.Errors), "error")+" (see Errors).") + "\n")
			continue
		}
		if a.Status == AppNotOwned {
			b.WriteString(cell(upperFirst(a.Note)+".") + "\n")
			continue
		}
		if a.Note != "" {
			b.WriteString(cell(upperFirst(a.Note)+".") + "\n\n")
		}
		if len(a.Objects) == 0 {
			b.WriteString("No objects.\n")
			continue
		}
		b.WriteString("| Change | Object | Details |\n|---|---|---|\n")
		var diffs []Field
		for _, o := range a.Objects {
			var details []string
			for _, f := range o.Fields {
				details = append(details, code(f.Line()))
				if f.Diff != "" {
					diffs = append(diffs, f)
				}
			}
			fmt.Fprintf(&b, "| %s | %s %s | %s |\n", o.Op, kindName(o), code(o.Name), strings.Join(details, "<br>"))
		}
		for _, f := range diffs {
			// The summary is inside an HTML block: its text is HTML.
			fmt.Fprintf(&b, "\n<details><summary>%s</summary>\n\n```diff\n%s\n```\n</details>\n",
				html.EscapeString(printable(strings.ReplaceAll(f.Line(), "\n", " "), "")), strings.ReplaceAll(printable(f.Diff, "\n\t"), "```", "`\u200b``"))
		}
	}
	if c := p.Capacity; c != nil {
		fmt.Fprintf(&b, "\n#### Capacity\n\nDry run on %s.\n\n", cell(c.header()))
		if len(c.Workloads) == 0 {
			b.WriteString("No new pods to place.\n")
		} else {
			b.WriteString("| Workload | Pods | Fit | Do not fit |\n|---|---|---|---|\n")
			for _, pl := range c.Workloads {
				unfit := strings.Join(pl.unfitTexts(), "<br>")
				if unfit == "" {
					unfit = "0"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(pl.App+"/"+pl.Workload), cell(pl.podsText()), cell(pl.fitText()), cell(unfit))
			}
		}
	}
	return b.String()
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cell makes text safe inside a Markdown table cell: one line (CommonMark
// ends a line at a bare \r too), every other control or invisible
// character escaped, pipes escaped.
func cell(s string) string {
	s = printable(strings.ReplaceAll(s, "\n", " "), "")
	return strings.ReplaceAll(s, "|", `\|`)
}

// printable escapes every character a terminal or a Markdown renderer
// would act on rather than show (control characters, \r included,
// invisible format characters such as bidirectional overrides, invalid
// UTF-8) as strconv.Quote does; it keeps ordinary UTF-8 and the
// characters in keep.
func printable(s, keep string) string {
	safe := func(r rune) bool { return unicode.IsPrint(r) || strings.ContainsRune(keep, r) }
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !safe(r) }) {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && isInvalid(s[i:]):
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case safe(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// isInvalid reports whether s starts with a byte that is not valid UTF-8.
func isInvalid(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return r == utf8.RuneError && size == 1
}

// code renders s as inline code that survives a table cell: pipes escaped
// (GitHub unescapes them inside code spans in tables) and enough backticks
// around it to hold any it contains.
func code(s string) string {
	s = cell(s)
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || len(fence) > 1 {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}

// fenced puts text in a fenced code block longer than any run of backticks
// inside it.
func fenced(s string) string {
	fence := "```"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	return fence + "text\n" + printable(s, "\n\t") + "\n" + fence + "\n"
}

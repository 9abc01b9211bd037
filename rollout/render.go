package rollout

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/capstanhq/capstan/apiserver/api"
)

// BarWidth is the number of cells in a progress bar.
const BarWidth = 20

// Bar draws a pod group's progress: '=' for available pods, '-' for
// updated pods not yet available, '.' for the rest of the desired count.
// A group of no pods is full once complete, empty before (it waits for
// the apps it depends on, or for its old pods to go).
func Bar(g Group) string {
	if g.Desired <= 0 {
		if g.State == Complete {
			return "[" + strings.Repeat("=", BarWidth) + "]"
		}
		return "[" + strings.Repeat(".", BarWidth) + "]"
	}
	cells := func(n int32) int {
		n = max(0, min(n, g.Desired))
		return int(n) * BarWidth / int(g.Desired)
	}
	avail := cells(min(g.Available, g.Updated))
	upd := max(cells(g.Updated), avail)
	return "[" + strings.Repeat("=", avail) + strings.Repeat("-", upd-avail) + strings.Repeat(".", BarWidth-upd) + "]"
}

// Headline is the one-line summary of a report.
func Headline(r Report) string {
	var b strings.Builder
	b.WriteString(r.App)
	if r.Commit != "" {
		b.WriteString(" @ " + api.ShortCommit(r.Commit))
	}
	b.WriteString(": rollout " + r.State.String())
	if r.Reason != "" {
		b.WriteString(": " + r.Reason)
	}
	return b.String()
}

// Render writes the report: the headline, a note when a newer commit was
// refused, and one progress line per pod group.
func Render(w io.Writer, r Report) error {
	var b strings.Builder
	b.WriteString(Headline(r) + "\n")
	for _, note := range []string{r.Refused, r.Note} {
		if note != "" {
			b.WriteString("  note: " + note + "\n")
		}
	}
	if len(r.Groups) == 0 {
		b.WriteString("  (no pod groups)\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  POD GROUP\tPROGRESS\tUPDATED\tREADY\tAVAILABLE\tSTATUS")
		for _, g := range r.Groups {
			status := g.State.String()
			if g.Reason != "" {
				status += ": " + g.Reason
			}
			fmt.Fprintf(tw, "  %s\t%s\t%d/%d\t%d/%d\t%d/%d\t%s\n", g.Name, Bar(g),
				g.Updated, g.Desired, g.Ready, g.Desired, g.Available, g.Desired, status)
		}
		tw.Flush()
	}
	_, err := io.WriteString(w, b.String())
	return err
}

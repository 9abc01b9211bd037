package forge

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/plan"
)

// Status contexts of the checks the component sets.
const (
	PlanContext   = "capstan/plan"
	DeployContext = "capstan/deploy"
)

// Marker is the hidden line that identifies the plan comment of a
// repository on a pull request; a human may edit the comment, the
// component finds it again by this marker (and its author).
func Marker(repo string) string { return "<!-- capstan:plan repo=" + repo + " -->" }

// FindOwn returns the first comment written by self whose first line is
// the marker: the one to keep up to date. A comment by anyone else quoting
// the marker is never edited, nor one of self's that holds the marker
// further down (a plan comment of another repository quoting descriptor
// content that a pull request wrote there).
func FindOwn(comments []Comment, self, marker string) (Comment, bool) {
	for _, c := range comments {
		if c.Author == self && marked(c, marker) {
			return c, true
		}
	}
	return Comment{}, false
}

// FindStale returns the comments by others than self whose first line is
// the marker: plan comments the token's earlier user wrote before the
// token was rotated to another user, or copies made to pass for the plan.
// They are deleted once self's comment is up, never edited: an edit would
// leave the plan in a comment its author can change.
func FindStale(comments []Comment, self, marker string) []Comment {
	var out []Comment
	for _, c := range comments {
		if c.Author != self && marked(c, marker) {
			out = append(out, c)
		}
	}
	return out
}

func marked(c Comment, marker string) bool {
	first, _, _ := strings.Cut(c.Body, "\n")
	return strings.TrimSpace(first) == marker
}

// PlanStatus decides the plan check of a pull request's head: failure when
// it does not validate, is not signed as the repository requires
// (sigErr), or its new pods do not all fit the live cluster; success
// otherwise.
func PlanStatus(p *plan.Plan, sigErr error) Status {
	st := Status{Context: PlanContext}
	unfit := Unfit(p)
	switch {
	case !p.Valid():
		st.State, st.Description = StateFailure, fmt.Sprintf("invalid: %s, %s", count(len(p.Errors), "error"), count(p.Count(plan.AppRejected), "app rejected"))
	case sigErr != nil:
		st.State, st.Description = StateFailure, "head is not signed by a trusted key: sync would refuse it"
	case unfit > 0:
		st.State, st.Description = StateFailure, fmt.Sprintf("%s would not fit on the cluster", count(unfit, "new pod"))
	default:
		st.State = StateSuccess
		changed := p.Count(plan.AppAdded) + p.Count(plan.AppChanged) + p.Count(plan.AppRemoved)
		st.Description = fmt.Sprintf("valid: %s changed", count(changed, "app"))
		if p.Capacity != nil {
			st.Description += ", fits the cluster"
		}
		if p.Held != "" {
			st.Description += "; " + p.Held
		}
	}
	return st
}

// Unfit counts the new pods of a plan that fit on no node.
func Unfit(p *plan.Plan) int {
	if p.Capacity == nil {
		return 0
	}
	n := 0
	for _, w := range p.Capacity.Workloads {
		n += w.Pods - w.Fit
	}
	return n
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, " rejected") {
		return fmt.Sprintf("%d %ss rejected", n, strings.TrimSuffix(noun, " rejected"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// CommentInput is what a plan comment shows.
type CommentInput struct {
	Repo string
	PR   PullRequest
	// Plan is nil when no plan could be made; Problem says why.
	Plan    *plan.Plan
	Problem string
	Status  Status
	// SigErr is the signature check's refusal, if any.
	SigErr error
	// Previews are the pull request's preview environments.
	Previews []PreviewLink
	// Limit is the forge's comment limit.
	Limit int
}

// CommentBody renders a plan comment: the marker, a one-line verdict, the
// plan as Markdown (plan.RenderMarkdown, as `capstan plan --format
// markdown` prints it), cut to the forge's limit.
func CommentBody(in CommentInput) string {
	var b strings.Builder
	b.WriteString(Marker(in.Repo) + "\n")
	b.WriteString(expiredMarks(in.Previews)) // first: never cut
	verdict := map[State]string{StateSuccess: "✅", StateFailure: "❌", StatePending: "⏳", StateError: "⚠️"}[in.Status.State]
	fmt.Fprintf(&b, "### %s Capstan plan for `%s` at %s\n\n", verdict, in.Repo, api.ShortCommit(in.PR.HeadSHA))
	if in.Status.Description != "" {
		fmt.Fprintf(&b, "**%s**\n\n", in.Status.Description)
	}
	if in.SigErr != nil {
		fmt.Fprintf(&b, "> Signature: %s\n\n", oneLine(in.SigErr.Error()))
	}
	if in.Plan == nil {
		fmt.Fprintf(&b, "No plan could be made: %s\n", oneLine(in.Problem))
	} else {
		b.WriteString(plan.RenderMarkdown(in.Plan))
	}
	b.WriteString(renderPreviews(in.Previews))
	note := fmt.Sprintf("\n\n---\n_The plan was cut to the forge's %d-character limit; run `capstan plan --pr %d` for all of it._\n", in.Limit, in.PR.Number)
	return Truncate(b.String(), in.Limit, note)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Truncate cuts a Markdown body to at most limit bytes (a byte count is
// never below the character count forges limit; 0 is no limit), at a line end, closing
// an open code fence and <details> section, and appends note. A body
// within the limit is returned as is.
func Truncate(body string, limit int, note string) string {
	if limit <= 0 || len(body) <= limit {
		return body
	}
	closers := "\n```\n</details>\n" + strings.Repeat("`", maxRun(body))
	keep := limit - len(note) - len(closers)
	if keep <= 0 {
		return runeCut(note, limit)
	}
	cut := runeCut(body, keep)
	if i := strings.LastIndexByte(cut, '\n'); i > 0 {
		cut = cut[:i]
	}
	var tail strings.Builder
	// A fence is closed only by a run of backticks at least as long as
	// the one that opened it (the plan's errors block grows its fence
	// around errors that hold backticks).
	open := ""
	for _, line := range strings.Split(cut, "\n") {
		line = strings.TrimSpace(line)
		run := line[:len(line)-len(strings.TrimLeft(line, "`"))]
		switch {
		case len(run) < 3:
		case open == "":
			open = run
		case len(run) >= len(open) && line == run:
			open = ""
		}
	}
	if open != "" {
		tail.WriteString("\n" + open)
	}
	if strings.Count(cut, "<details>") > strings.Count(cut, "</details>") {
		tail.WriteString("\n</details>")
	}
	return cut + tail.String() + note
}

// runeCut cuts s to at most n bytes without splitting a character.
func runeCut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// maxRun is the length of the longest run of backticks in s beyond the
// three a closing fence always has: room kept for a longer one.
func maxRun(s string) int {
	longest, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return max(longest-3, 0)
}

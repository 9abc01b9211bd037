package forge

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/plan"
)

func TestTruncate(t *testing.T) {
	note := "\n_cut_\n"
	long := "# plan\n```\n" + strings.Repeat("line of the plan\n", 200) + "```\n<details>\nx\n</details>\n"
	for _, tc := range []struct {
		name  string
		body  string
		limit int
		want  []string
	}{
		{"within the limit", "short", 100, []string{"short"}},
		{"cut inside a fence closes it", long, 300, []string{"# plan", "\n```" + note}},
		{"cut with open details closes it", "<details>\n" + strings.Repeat("a\n", 500), 200, []string{"</details>" + note}},
		{"cut inside a longer fence closes it with as many backticks", "# errors\n````text\n" + strings.Repeat("a.cue:1:1: x: \"```\"\n", 50) + "````\n", 300, []string{"\n````" + note}},
		{"multi-byte characters are not split", strings.Repeat("é", 500), 101, []string{"_cut_"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Truncate(tc.body, tc.limit, note)
			if len(got) > tc.limit && len(tc.body) > tc.limit {
				t.Fatalf("%d bytes, over the limit %d", len(got), tc.limit)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("invalid UTF-8: %q", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			if strings.Count(got, "```")%2 != 0 {
				t.Errorf("unbalanced fences in %q", got)
			}
		})
	}
}

func FuzzTruncate(f *testing.F) {
	f.Add("```\nabc\n", 10)
	f.Add(strings.Repeat("é\n", 50), 33)
	f.Fuzz(func(t *testing.T, body string, limit int) {
		if limit <= 0 || limit > 1<<16 || !utf8.ValidString(body) {
			return
		}
		got := Truncate(body, limit, "\n_cut_\n")
		if len(body) > limit && len(got) > limit {
			t.Fatalf("%d bytes over %d", len(got), limit)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8")
		}
	})
}

func TestFindOwn(t *testing.T) {
	m := Marker("deploy")
	cs := []Comment{{ID: 1, Author: "alice", Body: "quote " + m}, {ID: 2, Author: "bot", Body: "no marker"},
		{ID: 3, Author: "bot", Body: m + "\nplan"}, {ID: 4, Author: "bot", Body: Marker("other")}}
	if c, ok := FindOwn(cs, "bot", m); !ok || c.ID != 3 {
		t.Fatalf("FindOwn = %+v, %v; want 3", c, ok)
	}
	if _, ok := FindOwn(cs[:2], "bot", m); ok {
		t.Fatal("found a comment without the marker or by someone else")
	}
	planted := []Comment{{ID: 5, Author: "bot", Body: Marker("other") + "\n| file `/etc/" + m + "` |"}}
	if c, ok := FindOwn(planted, "bot", m); ok {
		t.Fatalf("found %+v: the marker is not its first line", c)
	}
	if c, ok := FindOwn([]Comment{{ID: 6, Author: "bot", Body: m + "\r\nedited on the web"}}, "bot", m); !ok || c.ID != 6 {
		t.Fatalf("FindOwn = %+v, %v; want 6 (a line end the forge rewrote)", c, ok)
	}
}

func TestFindStale(t *testing.T) {
	m := Marker("deploy")
	cs := []Comment{{ID: 1, Author: "alice", Body: "quote " + m}, {ID: 2, Author: "old-bot", Body: m + "\nplan"},
		{ID: 3, Author: "bot", Body: m + "\nplan"}, {ID: 4, Author: "old-bot", Body: Marker("other") + "\nplan"}}
	got := FindStale(cs, "bot", m)
	if len(got) != 1 || got[0].ID != 2 {
		t.Fatalf("FindStale = %+v; want comment 2 only (not a quote, not ours, not another repository's)", got)
	}
}

func TestPlanStatus(t *testing.T) {
	valid := &plan.Plan{Apps: []plan.App{{Name: "x", Status: plan.AppChanged}}, Capacity: &plan.Capacity{Workloads: []plan.Placement{{Pods: 2, Fit: 2}}}}
	invalid := &plan.Plan{Errors: []api.SourceError{{File: "a.cue", Line: 1, Message: "bad"}}, Apps: []plan.App{{Name: "x", Status: plan.AppRejected}}}
	unfit := &plan.Plan{Capacity: &plan.Capacity{Workloads: []plan.Placement{{Pods: 3, Fit: 1}}}}
	for _, tc := range []struct {
		name  string
		p     *plan.Plan
		sig   error
		state State
		desc  string
	}{
		{"valid and fits", valid, nil, StateSuccess, "valid: 1 app changed, fits the cluster"},
		{"invalid", invalid, nil, StateFailure, "invalid: 1 error, 1 app rejected"},
		{"unsigned", valid, gitsync.ErrUnsigned, StateFailure, "head is not signed by a trusted key: sync would refuse it"},
		{"does not fit", unfit, nil, StateFailure, "2 new pods would not fit on the cluster"},
		{"no cluster", &plan.Plan{}, nil, StateSuccess, "valid: 0 apps changed"},
		{"held", &plan.Plan{Apps: []plan.App{{Name: "x", Status: plan.AppRemoved}}, Held: "held: would delete 1 of 1 apps (...)"}, nil, StateSuccess,
			"valid: 1 app changed; held: would delete 1 of 1 apps (...)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := PlanStatus(tc.p, tc.sig)
			if st.State != tc.state || st.Description != tc.desc || st.Context != PlanContext {
				t.Fatalf("PlanStatus = %+v, want %s %q", st, tc.state, tc.desc)
			}
		})
	}
}

func TestParseHook(t *testing.T) {
	for _, tc := range []struct {
		name        string
		forge       gitsync.Forge
		event, body string
		want        Hook
		ok, bad     bool
	}{
		{"github opened", gitsync.ForgeGitHub, "pull_request", `{"action":"opened","number":7,"pull_request":{"base":{"ref":"main"}}}`, Hook{7, "opened", "main", nil}, true, false},
		{"github form-encoded", gitsync.ForgeGitHub, "pull_request", `payload=%7B%22action%22%3A%22closed%22%2C%22number%22%3A3%7D`, Hook{3, "closed", "", nil}, true, false},
		{"gitea synchronized", gitsync.ForgeGitea, "pull_request_sync", `{"action":"synchronized","number":2,"pull_request":{"number":2,"base":{"ref":"main"}}}`, Hook{2, "synchronized", "main", nil}, true, false},
		{"gitlab merge request", gitsync.ForgeGitLab, "Merge Request Hook", `{"object_kind":"merge_request","object_attributes":{"iid":9,"action":"update","target_branch":"main"}}`, Hook{9, "update", "main", nil}, true, false},
		{"github labeled", gitsync.ForgeGitHub, "pull_request", `{"action":"labeled","number":7,"label":{"name":"preview"},"pull_request":{"base":{"ref":"main"}}}`, Hook{7, "labeled", "main", []string{"preview"}}, true, false},
		{"github unlabeled adds none", gitsync.ForgeGitHub, "pull_request", `{"action":"unlabeled","number":7,"label":{"name":"preview"}}`, Hook{7, "unlabeled", "", nil}, true, false},
		{"gitlab labels added", gitsync.ForgeGitLab, "Merge Request Hook", `{"object_attributes":{"iid":9,"action":"update","target_branch":"main"},"changes":{"labels":{"previous":[{"title":"bug"},{"title":"ui"}],"current":[{"title":"ui"},{"title":"preview"},{"title":""}]}}}`, Hook{9, "update", "main", []string{"preview"}}, true, false},
		{"a review is not a pull-request change", gitsync.ForgeGitHub, "pull_request_review", `{}`, Hook{}, false, false},
		{"an issue", gitsync.ForgeGitHub, "issues", `{"number":1}`, Hook{}, false, false},
		{"no number", gitsync.ForgeGitHub, "pull_request", `{"action":"opened"}`, Hook{}, true, true},
		{"not JSON", gitsync.ForgeGitLab, "Merge Request Hook", `<html>`, Hook{}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok, err := ParseHook(tc.forge, tc.event, []byte(tc.body))
			if ok != tc.ok || (err != nil) != tc.bad || (err != nil && !errors.Is(err, ErrBadHook)) {
				t.Fatalf("ParseHook = %+v, %v, %v", h, ok, err)
			}
			if !tc.bad && !reflect.DeepEqual(h, tc.want) {
				t.Fatalf("hook %+v, want %+v", h, tc.want)
			}
		})
	}
}

func FuzzParseHook(f *testing.F) {
	f.Add("github", "pull_request", []byte(`{"action":"opened","number":7}`))
	f.Add("gitlab", "Merge Request Hook", []byte(`{"object_attributes":{"iid":1}}`))
	f.Add("gitea", "pull_request", []byte(`payload=%7B%7D`))
	f.Add("github", "pull_request", []byte(`{"action":"labeled","number":7,"label":{"name":"preview"}}`))
	f.Add("gitlab", "Merge Request Hook", []byte(`{"object_attributes":{"iid":1},"changes":{"labels":{"previous":[{"title":"a"}],"current":[{"title":"b"}]}}}`))
	f.Fuzz(func(t *testing.T, forge, event string, body []byte) {
		h, ok, err := ParseHook(gitsync.Forge(forge), event, body)
		if err == nil && ok && h.Number <= 0 {
			t.Fatalf("accepted a hook without a pull request: %+v", h)
		}
		if slices.Contains(h.Labeled, "") {
			t.Fatalf("an empty label taken as added: %+v", h)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 1, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   time.Duration
		ok     bool
	}{
		{"seconds", map[string]string{"Retry-After": "30"}, 30 * time.Second, true},
		{"http date", map[string]string{"Retry-After": now.Add(time.Minute).Format(http.TimeFormat)}, time.Minute, true},
		{"github reset", map[string]string{"X-RateLimit-Reset": "1796446860"}, time.Unix(1796446860, 0).Sub(now), true},
		{"gitlab reset", map[string]string{"RateLimit-Reset": "1796446860"}, time.Unix(1796446860, 0).Sub(now), true},
		{"reset in the past waits a second", map[string]string{"X-RateLimit-Reset": "100"}, time.Second, true},
		{"nothing", nil, 0, false},
		{"garbage", map[string]string{"Retry-After": "soon"}, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			got, ok := RetryAfter(h, now)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("RetryAfter = %v, %v; want %v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	f.Add("30", "")
	f.Add("", "1796446860")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", "-1")
	f.Fuzz(func(t *testing.T, retry, reset string) {
		h := http.Header{}
		h.Set("Retry-After", retry)
		h.Set("X-RateLimit-Reset", reset)
		if d, ok := RetryAfter(h, time.Unix(1_700_000_000, 0)); ok && d < 0 {
			t.Fatalf("negative wait %v", d)
		}
	})
}

// A problem posted on a pull request names no path of the server.
func TestPublicProblem(t *testing.T) {
	data := "/var/lib/capstan/forge"
	clone := dataName(data, "deploy")
	err := fmt.Errorf("plan: read %s at abc: %w", clone, errors.New("object not found"))
	got := publicProblem(err, data, clone, "deploy")
	if strings.Contains(got, "/var/lib") || got != "plan: read the server's clone of deploy at abc: object not found" {
		t.Errorf("publicProblem = %q", got)
	}
	if got := publicProblem(errors.New("open "+data+"/x: denied"), data, clone, "deploy"); got != "open DATA/x: denied" {
		t.Errorf("publicProblem = %q", got)
	}
}

// TestClosedBody: the comment of a pull request closed while the server
// was down, edited from its body alone, reads as the comment of a close
// seen live: the deleted previews say so, the refused and expired ones
// and the expired marks are gone, the rest stays.
func TestClosedBody(t *testing.T) {
	const why = "the pull request is no longer open against main"
	in := CommentInput{Repo: "deploy", PR: PullRequest{Number: 4, HeadSHA: "0123456789abcdef"}, Problem: "head gone",
		Status: Status{State: StateFailure, Description: "no plan"}}
	shown := in
	shown.Previews = []PreviewLink{
		{App: "x-pr-4", URLs: []string{"http://10.0.0.1:30080"}, Names: []string{"web.x-pr-4.svc:80"}},
		{App: "y-pr-4", Refused: "over the quota"},
		{App: "z-pr-4", Expired: true, Head: "0123456789abcdef", Expires: "2026-01-02T03:00:00Z", Refused: "its ttl passed"},
	}
	live := in
	live.Previews = []PreviewLink{{App: "x-pr-4", Deleted: true, Refused: why}}
	body := CommentBody(shown)
	if !strings.Contains(body, "capstan:preview-expired z-pr-4") {
		t.Fatalf("the test's comment has no expired mark:\n%s", body)
	}
	got, ok := ClosedBody(body, []string{"x-pr-4"}, why)
	if want := CommentBody(live); !ok || got != want {
		t.Fatalf("ClosedBody = %v\n%s\nwant the live close's comment:\n%s", ok, got, want)
	}
	if again, ok := ClosedBody(got, []string{"x-pr-4"}, why); ok {
		t.Errorf("ClosedBody of its own output changed it again:\n%s", again)
	}
	// A comment cut before its previews, or with none, is left alone.
	if _, ok := ClosedBody(CommentBody(in), []string{"x-pr-4"}, why); ok {
		t.Error("ClosedBody changed a comment that lists no preview")
	}
	// Text after the list (the note of a cut comment) stays.
	cut := body + "\n\n---\n_The plan was cut_\n"
	if got, _ := ClosedBody(cut, []string{"x-pr-4"}, why); !strings.HasSuffix(got, "deleted: "+why+"\n\n\n---\n_The plan was cut_\n") {
		t.Errorf("the text after the previews lost:\n%s", got)
	}
}

// FuzzClosedBody: any comment body (it comes back from the forge) is
// edited without a panic, names each deleted preview once done, and a
// second edit changes nothing.
func FuzzClosedBody(f *testing.F) {
	f.Add(CommentBody(CommentInput{Repo: "r", Problem: "p", Previews: []PreviewLink{{App: "a-pr-1"}, {App: "b-pr-1", Expired: true, Head: "abcdef0", Expires: "x"}}}), "a-pr-1")
	f.Add("\n#### Preview environments\n\n- `", "a")
	f.Add("<!-- capstan:preview-expired a 0123456 x -->\n\n#### Preview environments\n\n\n#### Preview environments\n\n- `x`: y", "x")
	f.Fuzz(func(t *testing.T, body, name string) {
		if !api.IsDNSSubdomain(name) {
			return // the deleted are App names
		}
		const why = "closed"
		out, ok := ClosedBody(body, []string{name}, why)
		if !ok {
			return
		}
		if !strings.Contains(out, "- `"+name+"`: deleted: "+why+"\n") {
			t.Fatalf("ClosedBody(%q) = %q: no line for %s", body, out, name)
		}
		if again, ok := ClosedBody(out, []string{name}, why); ok {
			t.Fatalf("ClosedBody changed its own output %q again: %q", out, again)
		}
	})
}

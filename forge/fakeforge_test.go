package forge

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeForge is a forge API in the test, on 127.0.0.1: GitHub's, GitLab's
// or Gitea's routes, answering with the payloads recorded from each
// forge's documented API (testdata/KIND/*.json) with the fields of its
// state filled in. Pull requests live in a real bare git repository:
// opening one or syncing its head updates refs/pull/N/head (GitLab:
// refs/merge-requests/N/head), as the forges do. Faults queued with
// fail are served before the real answer: rate limits with their retry
// headers, 5xx, refused tokens.
type fakeForge struct {
	t     testing.TB
	kind  string
	token string
	self  string
	bare  string
	srv   *httptest.Server
	// perPage caps page sizes, so lists page.
	perPage int

	mu          sync.Mutex
	prs         map[int]*fakePR
	comments    map[int][]*fakeComment
	nextComment int64
	statuses    map[string][]Status
	faults      []fault
	calls       map[string]int
	// deployments are GitHub deployments: commit and statuses, by ID.
	deployments []fakeDeployment
	// ownOnly refuses (403) to edit or delete another user's comment, as
	// GitLab does for a developer's token.
	ownOnly bool
}

type fakeDeployment struct {
	sha, environment, description string
	states                        []string
}

type fakePR struct {
	number             int
	title, head, base  string
	sha                string
	open, merged, fork bool
	labels             []string
}

type fakeComment struct {
	id           int64
	author, body string
}

type fault struct {
	method, path string // path: a substring of the request path
	code         int
	header       map[string]string
	fixture      string
}

func newFakeForge(t testing.TB, kind, bare string) *fakeForge {
	f := &fakeForge{t: t, kind: kind, token: "secret-token", bare: bare, perPage: 2,
		prs: map[int]*fakePR{}, comments: map[int][]*fakeComment{}, statuses: map[string][]Status{}, calls: map[string]int{}}
	f.self = map[string]string{"github": "capstan-bot", "gitlab": "capstan-bot", "gitea": "capstan-bot"}[kind]
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// apiURL is what a repository's forge.apiURL would say.
func (f *fakeForge) apiURL() string {
	switch f.kind {
	case "gitlab":
		return f.srv.URL + "/api/v4"
	}
	return f.srv.URL
}

func (f *fakeForge) headRef(n int) string {
	if f.kind == "gitlab" {
		return fmt.Sprintf("refs/merge-requests/%d/head", n)
	}
	return fmt.Sprintf("refs/pull/%d/head", n)
}

func (f *fakeForge) git(args ...string) string {
	f.t.Helper()
	out, err := exec.Command("git", append([]string{"-C", f.bare}, args...)...).CombinedOutput()
	if err != nil {
		f.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// open opens a pull request from branch head into base, as the forge's
// "create pull request" does.
func (f *fakeForge) open(head, base, title string) int {
	f.mu.Lock()
	n := len(f.prs) + 1
	f.prs[n] = &fakePR{number: n, title: title, head: head, base: base, open: true}
	f.mu.Unlock()
	f.syncHead(n)
	return n
}

// syncHead moves the pull request's head ref to its branch, as the forge
// does after a push; a deleted branch leaves the ref deleted too.
func (f *fakeForge) syncHead(n int) {
	f.mu.Lock()
	pr := f.prs[n]
	f.mu.Unlock()
	sha, err := exec.Command("git", "-C", f.bare, "rev-parse", "--verify", "-q", "refs/heads/"+pr.head).Output()
	if err != nil {
		f.git("update-ref", "-d", f.headRef(n))
		return
	}
	f.git("update-ref", f.headRef(n), strings.TrimSpace(string(sha)))
	f.mu.Lock()
	pr.sha = strings.TrimSpace(string(sha))
	f.mu.Unlock()
}

func (f *fakeForge) fail(method, path string, code int, fixture string, header map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = append(f.faults, fault{method: method, path: path, code: code, fixture: fixture, header: header})
}

// humanComment adds a comment by someone else.
func (f *fakeForge) humanComment(n int, author, body string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextComment++
	f.comments[n] = append(f.comments[n], &fakeComment{id: f.nextComment, author: author, body: body})
	return f.nextComment
}

// editComment changes a comment's body, as a human editing it does.
func (f *fakeForge) editComment(id int64, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.comments {
		for _, c := range cs {
			if c.id == id {
				c.body = body
			}
		}
	}
}

// ownComments are the comments of the token's user on pull request n.
func (f *fakeForge) ownComments(n int) []fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeComment
	for _, c := range f.comments[n] {
		if c.author == f.self {
			out = append(out, *c)
		}
	}
	return out
}

func (f *fakeForge) allComments(n int) []fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeComment
	for _, c := range f.comments[n] {
		out = append(out, *c)
	}
	return out
}

// lastStatus is the latest status of context on sha.
func (f *fakeForge) lastStatus(sha, context string) (Status, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.statuses[sha]) - 1; i >= 0; i-- {
		if s := f.statuses[sha][i]; s.Context == context {
			return s, true
		}
	}
	return Status{}, false
}

func (f *fakeForge) statusHistory(sha, context string) []State {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []State
	for _, s := range f.statuses[sha] {
		if s.Context == context {
			out = append(out, s.State)
		}
	}
	return out
}

func (f *fakeForge) callCount(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[key]
}

func (f *fakeForge) fixture(name string) map[string]any {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", f.kind, name+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		f.t.Fatalf("%s/%s: %v", f.kind, name, err)
	}
	return m
}

func (f *fakeForge) reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// setToken makes the forge accept token instead (a rotation).
func (f *fakeForge) setToken(token string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.token = token
}

func (f *fakeForge) authorized(r *http.Request) bool {
	f.mu.Lock()
	token := f.token
	f.mu.Unlock()
	switch f.kind {
	case "github":
		return r.Header.Get("Authorization") == "Bearer "+token
	case "gitlab":
		return r.Header.Get("Private-Token") == token || r.Header.Get("Authorization") == "Bearer "+token
	default:
		return r.Header.Get("Authorization") == "token "+token
	}
}

var (
	ghRoute = regexp.MustCompile(`^/(?:api/v1/)?repos/[^/]+/[^/]+/(pulls|pulls/(\d+)|issues/(\d+)/comments|issues/comments/(\d+)|statuses/([0-9a-f]+)|deployments|deployments/(\d+)/statuses)$`)
	glRoute = regexp.MustCompile(`^/api/v4/projects/[^/]+/(merge_requests|merge_requests/(\d+)|merge_requests/(\d+)/notes|merge_requests/(\d+)/notes/(\d+)|statuses/([0-9a-f]+))$`)
)

func (f *fakeForge) serve(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if f.kind == "gitlab" {
		// The project's path arrives escaped (org%2Fdeploy).
		path = strings.Replace(path, "%2F", "-", 1)
	}
	f.mu.Lock()
	f.calls[r.Method+" "+path]++
	for i, ft := range f.faults {
		if ft.method == r.Method && strings.Contains(path, ft.path) {
			f.faults = append(f.faults[:i], f.faults[i+1:]...)
			f.mu.Unlock()
			for k, v := range ft.header {
				w.Header().Set(k, v)
			}
			f.reply(w, ft.code, f.fixture(ft.fixture))
			return
		}
	}
	f.mu.Unlock()
	if !f.authorized(r) {
		f.reply(w, http.StatusUnauthorized, f.fixture("error_401"))
		return
	}
	if path == "/user" || path == "/api/v1/user" || path == "/api/v4/user" {
		u := f.fixture("user")
		f.mu.Lock()
		u["login"], u["username"] = f.self, f.self
		f.mu.Unlock()
		f.reply(w, http.StatusOK, u)
		return
	}
	if f.kind == "gitlab" {
		f.serveGitLab(w, r, path)
		return
	}
	m := ghRoute.FindStringSubmatch(path)
	if m == nil {
		f.reply(w, http.StatusNotFound, f.fixture("error_404"))
		return
	}
	switch {
	case m[1] == "pulls" && r.Method == http.MethodGet:
		var list []any
		for _, pr := range f.sortedPRs() {
			if pr.open && (r.URL.Query().Get("base") == "" || r.URL.Query().Get("base") == pr.base) {
				list = append(list, f.renderPR(pr))
			}
		}
		f.page(w, r, list)
	case m[1] == "pulls" && r.Method == http.MethodPost:
		var in struct{ Title, Head, Base string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		n := f.open(in.Head, in.Base, in.Title)
		f.reply(w, http.StatusCreated, f.renderPR(f.pr(n)))
	case m[2] != "":
		f.servePR(w, atoi(m[2]))
	case m[3] != "":
		f.serveComments(w, r, atoi(m[3]))
	case m[4] != "":
		f.serveEditComment(w, r, atoi(m[4]))
	case m[5] != "" && r.Method == http.MethodPost:
		var in struct {
			State, Context, Description string
			TargetURL                   string `json:"target_url"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		f.addStatus(m[5], Status{State: State(in.State), Context: in.Context, Description: in.Description, TargetURL: in.TargetURL})
		s := f.fixture("status")
		s["state"], s["status"], s["context"], s["description"] = in.State, in.State, in.Context, in.Description
		f.reply(w, http.StatusCreated, s)
	case m[1] == "deployments" && f.kind == "github" && r.Method == http.MethodGet:
		q := r.URL.Query()
		var list []any
		f.mu.Lock()
		ds := slices.Clone(f.deployments)
		f.mu.Unlock()
		for i, d := range slices.Backward(ds) {
			if (q.Get("sha") == "" || q.Get("sha") == d.sha) && (q.Get("environment") == "" || q.Get("environment") == d.environment) {
				list = append(list, f.renderDeployment(i+1, d))
			}
		}
		f.page(w, r, list)
	case m[1] == "deployments" && f.kind == "github":
		var in struct{ Ref, Environment, Description string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		id := f.addDeployment(in.Ref, in.Environment, in.Description)
		f.reply(w, http.StatusCreated, f.renderDeployment(id, fakeDeployment{sha: in.Ref, environment: in.Environment, description: in.Description}))
	case m[6] != "" && f.kind == "github":
		var in struct{ State string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		id := atoi(m[6])
		f.mu.Lock()
		if id < 1 || id > len(f.deployments) {
			f.mu.Unlock()
			f.reply(w, http.StatusNotFound, f.fixture("error_404"))
			return
		}
		f.deployments[id-1].states = append(f.deployments[id-1].states, in.State)
		f.mu.Unlock()
		d := f.fixture("deployment_status")
		d["state"] = in.State
		f.reply(w, http.StatusCreated, d)
	default:
		f.reply(w, http.StatusNotFound, f.fixture("error_404"))
	}
}

// addDeployment makes a GitHub deployment and returns its ID.
func (f *fakeForge) addDeployment(sha, environment, description string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployments = append(f.deployments, fakeDeployment{sha: sha, environment: environment, description: description})
	return len(f.deployments)
}

func (f *fakeForge) renderDeployment(id int, fd fakeDeployment) map[string]any {
	d := f.fixture("deployment")
	d["id"], d["sha"], d["ref"], d["environment"], d["description"] = id, fd.sha, fd.sha, fd.environment, fd.description
	return d
}

// deploymentsOf are the deployments of sha.
func (f *fakeForge) deploymentsOf(sha string) []fakeDeployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeDeployment
	for _, d := range f.deployments {
		if d.sha == sha {
			out = append(out, fakeDeployment{sha: d.sha, environment: d.environment, description: d.description, states: slices.Clone(d.states)})
		}
	}
	return out
}

func (f *fakeForge) serveGitLab(w http.ResponseWriter, r *http.Request, path string) {
	m := glRoute.FindStringSubmatch(path)
	if m == nil {
		f.reply(w, http.StatusNotFound, f.fixture("error_404"))
		return
	}
	switch {
	case m[1] == "merge_requests":
		var list []any
		for _, pr := range f.sortedPRs() {
			if pr.open && (r.URL.Query().Get("target_branch") == "" || r.URL.Query().Get("target_branch") == pr.base) {
				list = append(list, f.renderPR(pr))
			}
		}
		f.page(w, r, list)
	case m[2] != "":
		f.servePR(w, atoi(m[2]))
	case m[3] != "":
		f.serveComments(w, r, atoi(m[3]))
	case m[5] != "":
		f.serveEditComment(w, r, atoi(m[5]))
	case m[6] != "":
		var in struct{ State, Name, Context, Description string }
		_ = json.NewDecoder(r.Body).Decode(&in)
		ctx := in.Name
		if ctx == "" {
			ctx = in.Context
		}
		if last, ok := f.lastStatus(m[6], ctx); ok && string(last.State) == in.State {
			f.reply(w, http.StatusBadRequest, f.fixture("error_400_transition"))
			return
		}
		f.addStatus(m[6], Status{State: State(in.State), Context: ctx, Description: in.Description})
		s := f.fixture("commit_status")
		s["status"], s["name"], s["sha"] = in.State, ctx, m[6]
		f.reply(w, http.StatusCreated, s)
	}
}

// servePR answers pull request n.
func (f *fakeForge) servePR(w http.ResponseWriter, n int) {
	pr := f.pr(n)
	if pr == nil {
		f.reply(w, http.StatusNotFound, f.fixture("error_404"))
		return
	}
	f.reply(w, http.StatusOK, f.renderPR(pr))
}

// serveComments lists pull request n's comments (GET) or adds one.
func (f *fakeForge) serveComments(w http.ResponseWriter, r *http.Request, n int) {
	if r.Method == http.MethodGet {
		f.page(w, r, f.renderComments(n))
		return
	}
	f.reply(w, http.StatusCreated, f.renderComment(f.addComment(n, readBody(r))))
}

// serveEditComment sets comment id's body, or deletes it.
func (f *fakeForge) serveEditComment(w http.ResponseWriter, r *http.Request, id int) {
	if f.othersComment(int64(id)) {
		f.reply(w, http.StatusForbidden, f.fixture("error_403_scope"))
		return
	}
	if r.Method == http.MethodDelete {
		if !f.deleteComment(int64(id)) {
			f.reply(w, http.StatusNotFound, f.fixture("error_404"))
			return
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c := f.setComment(int64(id), readBody(r))
	if c == nil {
		f.reply(w, http.StatusNotFound, f.fixture("error_404"))
		return
	}
	f.reply(w, http.StatusOK, f.renderComment(c))
}

func readBody(r *http.Request) string {
	var in struct{ Body string }
	b, _ := io.ReadAll(r.Body)
	if json.Unmarshal(b, &in) != nil {
		v, _ := url.ParseQuery(string(b))
		return v.Get("body")
	}
	return in.Body
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func (f *fakeForge) pr(n int) *fakePR {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.prs[n]
}

func (f *fakeForge) sortedPRs() []*fakePR {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakePR
	for n := 1; n <= len(f.prs); n++ {
		out = append(out, f.prs[n])
	}
	return out
}

func (f *fakeForge) addComment(n int, body string) *fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextComment++
	c := &fakeComment{id: f.nextComment, author: f.self, body: body}
	f.comments[n] = append(f.comments[n], c)
	return c
}

func (f *fakeForge) setComment(id int64, body string) *fakeComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.comments {
		for _, c := range cs {
			if c.id == id {
				c.body = body
				return c
			}
		}
	}
	return nil
}

func (f *fakeForge) deleteComment(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, cs := range f.comments {
		for i, c := range cs {
			if c.id == id {
				f.comments[n] = append(cs[:i:i], cs[i+1:]...)
				return true
			}
		}
	}
	return false
}

// othersComment reports whether ownOnly refuses to touch comment id.
func (f *fakeForge) othersComment(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.comments {
		for _, c := range cs {
			if c.id == id {
				return f.ownOnly && c.author != f.self
			}
		}
	}
	return false
}

// setSelf makes the token another user's, as a token rotated to one.
func (f *fakeForge) setSelf(login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.self = login
}

func (f *fakeForge) addStatus(sha string, s Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses[sha] = append(f.statuses[sha], s)
}

func (f *fakeForge) renderComments(n int) []any {
	f.mu.Lock()
	cs := append([]*fakeComment(nil), f.comments[n]...)
	f.mu.Unlock()
	out := []any{}
	for _, c := range cs {
		out = append(out, f.renderComment(c))
	}
	return out
}

func (f *fakeForge) renderComment(c *fakeComment) map[string]any {
	if f.kind == "gitlab" {
		m := f.fixture("note")
		m["id"], m["body"] = c.id, c.body
		m["author"].(map[string]any)["username"] = c.author
		return m
	}
	m := f.fixture("comment")
	m["id"], m["body"] = c.id, c.body
	m["user"].(map[string]any)["login"] = c.author
	return m
}

func (f *fakeForge) renderPR(pr *fakePR) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch f.kind {
	case "gitlab":
		m := f.fixture("merge_request")
		m["iid"], m["title"], m["source_branch"], m["target_branch"], m["sha"] = pr.number, pr.title, pr.head, pr.base, pr.sha
		m["state"] = map[bool]string{true: "opened", false: "closed"}[pr.open]
		if pr.merged {
			m["state"] = "merged"
		}
		if pr.fork {
			m["source_project_id"] = 999
		}
		labels := []any{}
		for _, l := range pr.labels {
			labels = append(labels, l)
		}
		m["labels"] = labels
		return m
	}
	m := f.fixture("pull")
	m["number"], m["title"], m["merged"] = pr.number, pr.title, pr.merged
	m["state"] = map[bool]string{true: "open", false: "closed"}[pr.open]
	head, base := m["head"].(map[string]any), m["base"].(map[string]any)
	head["ref"], head["sha"], base["ref"] = pr.head, pr.sha, pr.base
	if pr.fork {
		repo := head["repo"].(map[string]any)
		repo["full_name"], repo["id"] = "someone/fork", 4242
		head["repo_id"] = 4242
	}
	labels := []any{}
	for _, l := range pr.labels {
		labels = append(labels, map[string]any{"id": 1, "name": l, "color": "ededed"})
	}
	m["labels"] = labels
	return m
}

// page serves one page of list, with the forge's pagination headers.
func (f *fakeForge) page(w http.ResponseWriter, r *http.Request, list []any) {
	q := r.URL.Query()
	page := max(atoi(q.Get("page")), 1)
	per := atoi(q.Get("per_page"))
	if per == 0 {
		per = atoi(q.Get("limit"))
	}
	if per <= 0 || per > f.perPage {
		per = f.perPage
	}
	start := min((page-1)*per, len(list))
	end := min(start+per, len(list))
	if end < len(list) {
		next := *r.URL
		q.Set("page", strconv.Itoa(page+1))
		next.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<%s%s>; rel="next"`, f.srv.URL, next.RequestURI()))
		w.Header().Set("X-Next-Page", strconv.Itoa(page+1))
	}
	w.Header().Set("X-Page", strconv.Itoa(page))
	w.Header().Set("X-Per-Page", strconv.Itoa(per))
	out := list[start:end]
	if out == nil {
		out = []any{}
	}
	f.reply(w, http.StatusOK, out)
}

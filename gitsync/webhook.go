package gitsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// WebhookPath is the pattern the webhook handler expects to be mounted at.
const WebhookPath = "POST /hooks/git/{repo}"

// Forge names a webhook sender.
type Forge string

// Supported forges.
const (
	ForgeGitHub Forge = "github"
	ForgeGitLab Forge = "gitlab"
	ForgeGitea  Forge = "gitea"
)

// hook is an authenticated-or-not webhook request, parsed.
type hook struct {
	forge Forge
	event string // "push", "tag_push", "ping" or the forge's own name
	ref   string // refs/heads/... or refs/tags/..., for pushes
}

var errBadPayload = errors.New("bad webhook payload")

// classifyHook tells the forge and event from the headers.
func classifyHook(h http.Header) (Forge, string, bool) {
	switch {
	case h.Get("X-Gitea-Signature") != "" || h.Get("X-Gitea-Event") != "":
		return ForgeGitea, h.Get("X-Gitea-Event"), true
	case h.Get("X-Gitlab-Token") != "" || h.Get("X-Gitlab-Event") != "":
		ev := h.Get("X-Gitlab-Event")
		switch ev {
		case "Push Hook":
			ev = "push"
		case "Tag Push Hook":
			ev = "tag_push"
		}
		return ForgeGitLab, ev, true
	case h.Get("X-Hub-Signature-256") != "" || h.Get("X-GitHub-Event") != "":
		return ForgeGitHub, h.Get("X-GitHub-Event"), true
	}
	return "", "", false
}

// authenticate checks a webhook's signature or token against the secret in
// constant time.
func authenticate(forge Forge, h http.Header, body []byte, secret string) bool {
	if secret == "" {
		return false
	}
	switch forge {
	case ForgeGitLab:
		tok := h.Get("X-Gitlab-Token")
		return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(secret)) == 1
	case ForgeGitea:
		if sig := h.Get("X-Gitea-Signature"); sig != "" {
			return hmacMatches(sig, body, secret)
		}
		// Gitea also sends the GitHub header.
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		return ok && hmacMatches(sig, body, secret)
	case ForgeGitHub:
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		return ok && hmacMatches(sig, body, secret)
	}
	return false
}

func hmacMatches(hexSig string, body []byte, secret string) bool {
	got, err := hex.DecodeString(strings.TrimSpace(hexSig))
	if err != nil || len(got) != sha256.Size {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// parseHook reads the event and pushed ref of a webhook request. Only push
// payloads are decoded; the three forges all carry the ref in "ref".
func parseHook(h http.Header, body []byte) (hook, error) {
	forge, event, ok := classifyHook(h)
	if !ok {
		return hook{}, fmt.Errorf("%w: no GitHub, GitLab or Gitea headers", errBadPayload)
	}
	hk := hook{forge: forge, event: event}
	if event != "push" && event != "tag_push" {
		return hk, nil
	}
	if forge == ForgeGitHub {
		if ct, _, _ := mime.ParseMediaType(h.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
			form, err := url.ParseQuery(string(body))
			if err != nil {
				return hk, fmt.Errorf("%w: %w", errBadPayload, err)
			}
			body = []byte(form.Get("payload"))
		}
	}
	var p struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return hk, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	if !strings.HasPrefix(p.Ref, "refs/") {
		return hk, fmt.Errorf("%w: push without a full ref name", errBadPayload)
	}
	hk.ref = p.Ref
	return hk, nil
}

// trackedRef is the full ref a webhook push must name to trigger a sync;
// "" for a pinned commit, which no push moves.
func (c RepoConfig) trackedRef() string {
	switch {
	case c.Tag != "":
		return "refs/tags/" + c.Tag
	case c.Branch != "":
		return "refs/heads/" + c.Branch
	}
	return ""
}

// WebhookHandler serves POST /hooks/git/{repo} for GitHub
// (X-Hub-Signature-256), GitLab (X-Gitlab-Token) and Gitea
// (X-Gitea-Signature). A push to the tracked ref triggers a sync (202);
// pings, other refs and a delivery already received (same delivery ID
// within Options.WebhookReplayWindow) are acknowledged without one (200).
// A missing or bad signature, an unknown repository and a repository
// without a webhook secret all get the same 401, so the answer does not
// tell which repositories exist (the log says which it was); a body over
// Options.MaxWebhookBody gets 413. Mount it with WebhookPath; other mounts
// work too, the repository being the last path element.
func (s *Syncer) WebhookHandler() http.Handler {
	return http.HandlerFunc(s.serveHook)
}

func (s *Syncer) serveHook(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		hookReply(w, http.StatusMethodNotAllowed, "", false, "use POST")
		return
	}
	name := r.PathValue("repo")
	if name == "" {
		name = r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	}
	limit := s.opts.MaxWebhookBody
	tooLarge := fmt.Sprintf("body over the webhook limit of %d bytes, not read: the push is applied on the next poll or 'capstan sync'", limit)
	if r.ContentLength > limit {
		hookReply(w, http.StatusRequestEntityTooLarge, name, false, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			hookReply(w, http.StatusRequestEntityTooLarge, name, false, tooLarge)
			return
		}
		hookReply(w, http.StatusBadRequest, name, false, "cannot read body")
		return
	}
	wk, known := s.workers[name]
	forge, _, isForge := classifyHook(r.Header)
	// Unknown repositories and those without a secret are checked against
	// a random secret, so they cost and answer the same as a bad signature.
	secret := s.hookDecoy
	why := "bad or missing signature or token"
	switch {
	case !known:
		why = "unknown repository"
	case wk.cfg.WebhookSecret == "":
		why = "webhooks are not enabled for this repository: set its webhookSecret"
	default:
		secret = s.webhookSecret(wk.cfg)
	}
	if !authenticate(forge, r.Header, body, secret) || !isForge || secret == s.hookDecoy {
		s.log.Warn("webhook refused", "repo", name, "why", why, "remote", r.RemoteAddr, "forge", forge)
		hookReply(w, http.StatusUnauthorized, name, false, "bad or missing signature or token (or no such repository with webhooks enabled): check the webhook URL and secret")
		return
	}
	id := deliveryID(forge, r.Header)
	if id != "" && !s.deliveries.first(name+"/"+string(forge)+"/"+id, s.opts.Now()) {
		s.log.Info("webhook delivery already received; ignored", "repo", name, "forge", forge, "delivery", id)
		hookReply(w, http.StatusOK, name, false, fmt.Sprintf("delivery %s already received; ignored", id))
		return
	}
	hk, err := parseHook(r.Header, body)
	if err != nil {
		hookReply(w, http.StatusBadRequest, name, false, err.Error())
		return
	}
	switch {
	case hk.event == "ping":
		hookReply(w, http.StatusOK, name, false, "pong")
	case hk.event != "push" && hk.event != "tag_push" && s.opts.OnHook != nil && s.opts.OnHook(name, hk.forge, hk.event, body):
		hookReply(w, http.StatusAccepted, name, false, fmt.Sprintf("event %q accepted", hk.event))
	case hk.event != "push" && hk.event != "tag_push":
		hookReply(w, http.StatusOK, name, false, fmt.Sprintf("event %q ignored", hk.event))
	case hk.ref != wk.cfg.trackedRef():
		hookReply(w, http.StatusOK, name, false, fmt.Sprintf("push to %s ignored; tracking %s", hk.ref, wk.cfg.Ref()))
	default:
		if s.opts.Relay != nil {
			relayed, err := s.opts.Relay(name)
			if err != nil {
				s.log.Error("webhook: pass the sync on to the leader", "repo", name, "err", err)
				if id != "" {
					s.deliveries.forget(name + "/" + string(forge) + "/" + id)
				}
				hookReply(w, http.StatusServiceUnavailable, name, false, fmt.Sprintf("the sync could not be passed on to the leading server (%v): the forge delivers the webhook again; see this server's log", err))
				return
			}
			if relayed {
				s.log.Debug("webhook sync passed on to the leader", "repo", name, "forge", hk.forge, "ref", hk.ref)
				hookReply(w, http.StatusAccepted, name, true, "sync triggered on the leading server")
				return
			}
		}
		wk.kick()
		s.log.Debug("webhook triggered sync", "repo", name, "forge", hk.forge, "ref", hk.ref)
		hookReply(w, http.StatusAccepted, name, true, "sync triggered")
	}
}

// deliveryID is the forge's unique ID of a webhook delivery, "" when it
// sends none.
func deliveryID(forge Forge, h http.Header) string {
	var id string
	switch forge {
	case ForgeGitHub:
		id = h.Get("X-GitHub-Delivery")
	case ForgeGitea:
		id = h.Get("X-Gitea-Delivery")
		if id == "" {
			id = h.Get("X-GitHub-Delivery")
		}
	case ForgeGitLab:
		id = h.Get("X-Gitlab-Event-UUID")
	}
	if len(id) > 200 {
		id = id[:200]
	}
	return id
}

// deliveries remembers webhook delivery IDs for a window, at most max of
// them (the oldest are forgotten first), so a captured signed delivery
// cannot be replayed within the window. Time is an input.
type deliveries struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	seen   map[string]time.Time
	order  []string // keys, oldest first
}

func newDeliveries(window time.Duration, max int) *deliveries {
	return &deliveries{window: window, max: max, seen: map[string]time.Time{}}
}

// first records key at now and reports whether it was not seen within
// the window.
func (d *deliveries) first(key string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.order) > 0 {
		oldest := d.order[0]
		if len(d.order) < d.max && now.Sub(d.seen[oldest]) < d.window {
			break
		}
		delete(d.seen, oldest)
		d.order = d.order[1:]
	}
	if _, ok := d.seen[key]; ok {
		return false
	}
	d.seen[key] = now
	d.order = append(d.order, key)
	return true
}

// forget drops key, so that a delivery that could not be acted on is
// taken when the forge sends it again.
func (d *deliveries) forget(key string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.seen, key)
	for i, k := range d.order {
		if k == key {
			d.order = append(d.order[:i], d.order[i+1:]...)
			break
		}
	}
}

func hookReply(w http.ResponseWriter, code int, repo string, triggered bool, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(struct {
		Repo      string `json:"repo,omitempty"`
		Triggered bool   `json:"triggered"`
		Message   string `json:"message"`
	}{repo, triggered, msg})
}

// webhookSecret is the repository's webhook secret as its file says now
// (see RepoConfig.WebhookSecretFile). A file that cannot be read is
// logged, and the secret read before stands.
func (s *Syncer) webhookSecret(cfg RepoConfig) string {
	if cfg.WebhookSecretFile == "" {
		return cfg.WebhookSecret
	}
	secret, err := ReadCredential(cfg.WebhookSecretFile)
	if err != nil {
		s.log.Warn("webhook secret file unreadable; checking with the secret read before", "repo", cfg.Name, "err", err)
		return cfg.WebhookSecret
	}
	return secret
}

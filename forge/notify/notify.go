// Package notify tells people what went wrong: a sync refused, a rollout
// failed, a rollback made (or refused), a node lost. Each is posted to the
// configured webhooks, as generic JSON or as a Slack-compatible message
// ({"text": ...}, which Slack, Mattermost, Rocket.Chat and Discord's
// /slack endpoint accept; escaped as Slack asks, except for Rocket.Chat),
// retried with back-off.
//
// Sending never blocks its caller: Notify queues (a bounded queue per
// webhook; when one is full the oldest message is dropped and counted in
// the log), and one goroutine per webhook posts. The Watcher finds the
// events in the API through informers, so sync and the controllers never
// wait on a webhook.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kinds of notifications.
const (
	SyncRefused   = "syncRefused"
	RolloutFailed = "rolloutFailed"
	RollbackMade  = "rollbackMade"
	NodeLost      = "nodeLost"
)

var allKinds = []string{SyncRefused, RolloutFailed, RollbackMade, NodeLost}

// Formats of a webhook.
const (
	FormatJSON = "json"
	// FormatSlack is {"text": ...} with Slack's control characters
	// escaped (SlackText): Slack, Mattermost, Discord's /slack.
	FormatSlack = "slack"
	// FormatRocketChat is {"text": ...} as it is: Rocket.Chat parses no
	// Slack sequences in it and shows HTML entities as typed.
	FormatRocketChat = "rocketchat"
)

var formats = []string{FormatJSON, FormatSlack, FormatRocketChat}

// Message is one notification; its JSON is the generic payload.
type Message struct {
	Kind    string    `json:"kind"`
	Time    time.Time `json:"time"`
	App     string    `json:"app,omitempty"`
	Repo    string    `json:"repo,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Node    string    `json:"node,omitempty"`
	Message string    `json:"message"`
}

// Text is the one-line form of a Slack-compatible message.
func (m Message) Text() string {
	var where []string
	for _, s := range []string{m.App, m.Node} {
		if s != "" {
			where = append(where, s)
		}
	}
	if m.Commit != "" {
		where = append(where, "commit "+m.Commit[:min(12, len(m.Commit))])
	}
	head := map[string]string{SyncRefused: "Sync refused", RolloutFailed: "Rollout failed", RollbackMade: "Rollback", NodeLost: "Node lost"}[m.Kind]
	if head == "" {
		head = m.Kind
	}
	if len(where) > 0 {
		head += " (" + strings.Join(where, ", ") + ")"
	}
	return ":warning: *Capstan* " + head + ": " + m.Message
}

// slackEscaper escapes the characters Slack parses in a message's text
// (its "Escaping text": &, < and >), so that a commit subject with
// <!channel> does not ping the channel nor <http://x|y> make a link.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// SlackText is Text escaped for Slack: it reads the same there, and in
// Mattermost, which turns the same <...> sequences into links and
// mentions and shows the entities as the characters.
func (m Message) SlackText() string { return slackEscaper.Replace(m.Text()) }

// Webhook is one destination.
type Webhook struct {
	URL string `yaml:"url"`
	// Format is json (default), slack or rocketchat.
	Format string `yaml:"format"`
	// Kinds are the notifications sent; default all.
	Kinds []string `yaml:"events"`
}

// Config is the notifications file:
//
//	webhooks:
//	  - url: https://hooks.slack.com/services/T000/B000/XXXX
//	    format: slack
//	  - url: https://ops.example.com/capstan
//	    events: [rolloutFailed, nodeLost]
type Config struct {
	Webhooks []Webhook `yaml:"webhooks"`
}

// ParseConfig reads and checks a notifications file's YAML.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("notifications: %w", err)
	}
	var errs []error
	for i, w := range c.Webhooks {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("notifications: webhooks[%d].url: not an http(s) URL", i))
		}
		if w.Format != "" && !slices.Contains(formats, w.Format) {
			errs = append(errs, fmt.Errorf("notifications: webhooks[%d].format: %q is not one of %s", i, w.Format, strings.Join(formats, ", ")))
		}
		for _, k := range w.Kinds {
			if !slices.Contains(allKinds, k) {
				errs = append(errs, fmt.Errorf("notifications: webhooks[%d].events: %q is not one of %s", i, k, strings.Join(allKinds, ", ")))
			}
		}
	}
	return c, errors.Join(errs...)
}

// LoadConfig reads a notifications file.
func LoadConfig(file string) (Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Config{}, fmt.Errorf("notifications: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return c, fmt.Errorf("%s: %w", file, err)
	}
	return c, nil
}

// Options configure a Notifier.
type Options struct {
	Config Config
	// Client posts; default one with a 10s timeout.
	Client *http.Client
	// Attempts is the most tries of one message. Default 5.
	Attempts int
	// Backoff is the first wait after a failure, doubled each time.
	// Default 1s.
	Backoff time.Duration
	// Queue bounds the messages waiting per webhook. Default 256.
	Queue int
	// Sleep waits; default a timer that stops with the context.
	Sleep func(ctx context.Context, d time.Duration) error
	// Logger; default discards.
	Logger *slog.Logger
}

// Notifier sends messages to the webhooks.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	sinks []*sink
}

type sink struct {
	hook    Webhook
	mu      sync.Mutex
	queue   []Message
	dropped int
	wake    chan struct{}
}

// New prepares a Notifier; Start sends.
func New(o Options) *Notifier {
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.Attempts <= 0 {
		o.Attempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Queue <= 0 {
		o.Queue = 256
	}
	if o.Sleep == nil {
		o.Sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{opts: o, log: o.Logger}
	for _, w := range o.Config.Webhooks {
		n.sinks = append(n.sinks, &sink{hook: w, wake: make(chan struct{}, 1)})
	}
	return n
}

// Enabled reports whether any webhook is configured.
func (n *Notifier) Enabled() bool { return n != nil && len(n.sinks) > 0 }

// Notify queues m for every webhook that wants its kind. It never blocks.
func (n *Notifier) Notify(m Message) {
	if n == nil {
		return
	}
	for _, s := range n.sinks {
		if len(s.hook.Kinds) > 0 && !slices.Contains(s.hook.Kinds, m.Kind) {
			continue
		}
		s.mu.Lock()
		if len(s.queue) >= n.opts.Queue {
			s.queue = s.queue[1:]
			s.dropped++
		}
		s.queue = append(s.queue, m)
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// Start posts queued messages until ctx ends.
func (n *Notifier) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, s := range n.sinks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.run(ctx, s)
		}()
	}
	wg.Wait()
	return nil
}

func (n *Notifier) run(ctx context.Context, s *sink) {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				continue
			}
		}
		m := s.queue[0]
		s.queue = s.queue[1:]
		dropped := s.dropped
		s.dropped = 0
		s.mu.Unlock()
		if dropped > 0 {
			n.log.Warn("notifications dropped: the webhook is slower than the events", "webhook", redact(s.hook.URL), "dropped", dropped)
		}
		if err := n.send(ctx, s.hook, m); err != nil && ctx.Err() == nil {
			n.log.Warn("notification not delivered", "webhook", redact(s.hook.URL), "kind", m.Kind, "err", err)
		}
	}
}

// send posts m, retrying 5xx, 429 and network errors with back-off.
func (n *Notifier) send(ctx context.Context, w Webhook, m Message) error {
	var body []byte
	switch w.Format {
	case FormatSlack:
		body, _ = json.Marshal(map[string]string{"text": m.SlackText()})
	case FormatRocketChat:
		body, _ = json.Marshal(map[string]string{"text": m.Text()})
	default:
		body, _ = json.Marshal(m)
	}
	wait := n.opts.Backoff
	var last error
	for attempt := 1; attempt <= n.opts.Attempts; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return redactURLError(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "capstan")
		resp, err := n.opts.Client.Do(req)
		err = redactURLError(err)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			switch {
			case resp.StatusCode < 300:
				return nil
			case resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500:
				return fmt.Errorf("webhook answered %s: check its URL", resp.Status)
			}
			err = fmt.Errorf("webhook answered %s", resp.Status)
		}
		last = err
		if attempt < n.opts.Attempts {
			if err := n.opts.Sleep(ctx, wait); err != nil {
				return err
			}
			wait *= 2
		}
	}
	return fmt.Errorf("after %d attempts: %w", n.opts.Attempts, last)
}

// redactURLError replaces the URL a *url.Error carries ("Post
// \"https://hooks.slack.com/services/...\": ...") with its redacted form,
// so that the error can be logged.
func redactURLError(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	c := *ue
	c.URL = redact(ue.URL)
	return &c
}

// redact keeps a webhook URL's host only: the path of a Slack webhook is
// its secret.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad URL)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

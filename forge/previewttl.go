// The ttl of preview environments: when one expires, its deletion, and
// how the pull request's comment remembers it across restarts.

package forge

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// Expired reports whether a preview App's time is up.
func Expired(a *api.App, now time.Time) bool {
	t, err := time.Parse(time.RFC3339, a.Metadata.Annotations[AnnotationExpires])
	return err == nil && !now.Before(t)
}

// expiredLink is an expired preview as the comment shows it.
func expiredLink(a *api.App) PreviewLink {
	return expiredMark{app: a.Metadata.Name, head: a.Metadata.Annotations[AnnotationHead], expires: a.Metadata.Annotations[AnnotationExpires]}.link()
}

// expiredMark is a preview deleted at its ttl, remembered on the pull
// request's comment (a hidden line under its marker) so that a server
// started again does not deploy the same head once more: the App is
// gone, and the forge's comment is the only state that outlives it.
type expiredMark struct{ app, head, expires string }

func (m expiredMark) link() PreviewLink {
	return PreviewLink{App: m.app, Expired: true, Head: m.head, Expires: m.expires,
		Refused: fmt.Sprintf("its ttl passed (%s); push to the pull request to deploy it again", m.expires)}
}

var expiredMarkRE = regexp.MustCompile(`(?m)^<!-- capstan:preview-expired ([a-z0-9-]{1,63}) ([0-9a-f]{7,64}) ([0-9A-Za-z:.+-]{1,40}) -->$`)

// expiredMarks are the hidden lines of the comment for its expired
// previews.
func expiredMarks(links []PreviewLink) string {
	var b strings.Builder
	for _, l := range links {
		m := fmt.Sprintf("<!-- capstan:preview-expired %s %s %s -->", l.App, l.Head, l.Expires)
		if l.Expired && expiredMarkRE.MatchString(m) {
			b.WriteString(m + "\n")
		}
	}
	return b.String()
}

// parseExpiredMarks reads the expired previews back from a comment body
// written by expiredMarks (the server's own comment; anything else in it
// is ignored).
func parseExpiredMarks(body string) map[string]expiredMark {
	out := map[string]expiredMark{}
	for _, m := range expiredMarkRE.FindAllStringSubmatch(body, 100) {
		out[m[1]] = expiredMark{app: m[1], head: m[2], expires: m[3]}
	}
	return out
}

// readExpired reads the expired previews from the pull request's plan
// comment, for a pull request the worker sees for the first time.
func (w *worker) readExpired(ctx context.Context, n int) (map[string]expiredMark, error) {
	self, err := w.fc.Self(ctx)
	if err != nil {
		return nil, err
	}
	comments, err := w.fc.Comments(ctx, n)
	if err != nil {
		return nil, err
	}
	c, _ := FindOwn(comments, self, Marker(w.cfg.Name))
	return parseExpiredMarks(c.Body), nil
}

// expirePreviews deletes the repository's previews whose time is up and
// those of pull requests no longer open (open: the open numbers); the
// comment of an open one says its preview expired.
func (w *worker) expirePreviews(ctx context.Context, open map[int]bool) error {
	all, err := w.previewsOf(ctx, 0)
	if err != nil {
		return err
	}
	var errs []error
	changed := map[int]*prState{}
	for _, a := range all {
		n, _ := strconv.Atoi(a.Metadata.Labels[LabelPreviewPR])
		expired := Expired(a, w.c.opts.Now())
		if !expired && (open == nil || open[n]) {
			continue
		}
		if err := w.deletePreview(ctx, a); err != nil {
			errs = append(errs, err)
			continue
		}
		if st := w.prs[n]; st != nil && expired && slices.Contains(st.previews, a.Metadata.Name) {
			st.previews = slices.DeleteFunc(st.previews, func(p string) bool { return p == a.Metadata.Name })
			refused := append(slices.Clip(st.refused), expiredLink(a))
			w.recordRefused(ctx, st, refused)
			st.refused = refused
			changed[n] = st
		}
	}
	for _, st := range changed {
		errs = append(errs, w.publish(ctx, st, w.c.live(), false))
	}
	return errors.Join(errs...)
}

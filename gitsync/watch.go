package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// gitDir finds the git directory of a local repository: DIR/.git, the
// target of a .git file ("gitdir: ..."), or DIR itself when bare.
func gitDir(dir string) (string, bool) {
	dotgit := filepath.Join(dir, ".git")
	if st, err := os.Stat(dotgit); err == nil {
		if st.IsDir() {
			return dotgit, true
		}
		b, err := os.ReadFile(dotgit)
		if err != nil {
			return "", false
		}
		target, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
		if !ok {
			return "", false
		}
		target = strings.TrimSpace(target)
		if !filepath.IsAbs(target) {
			target = filepath.Join(dir, target)
		}
		return target, true
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		if st, err := os.Stat(filepath.Join(dir, "objects")); err == nil && st.IsDir() {
			return dir, true
		}
	}
	return "", false
}

// errWatchLost marks a watch whose directories were removed or replaced
// (a re-clone, a restore, an rsync that replaces .git): inotify follows
// the old inodes, so the watch must be set up again on the new ones.
var errWatchLost = errors.New("the watched repository directory was removed or replaced")

// watch calls kick when the tracked ref of a local repository may have
// moved: on changes to HEAD, packed-refs or files under refs/. A burst of
// events within debounce makes one kick. It also watches root (the
// repository's directory) and returns errWatchLost, after a kick, when a
// watched directory is removed or renamed or root's .git is replaced. It
// calls ready once the watch is set up, returns nil when ctx ends, and
// fails at once if the watch cannot be set up.
func watch(ctx context.Context, root, gitdir string, cfg RepoConfig, debounce time.Duration, kick, ready func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	dirs := []string{gitdir, filepath.Join(gitdir, "refs"), filepath.Join(gitdir, "refs", "heads"), filepath.Join(gitdir, "refs", "tags")}
	if cfg.Branch != "" {
		if d := path.Dir(cfg.Branch); d != "." {
			dirs = append(dirs, filepath.Join(gitdir, "refs", "heads", filepath.FromSlash(d)))
		}
	}
	if root != gitdir {
		dirs = append(dirs, root)
	}
	watched := map[string]bool{}
	for _, d := range dirs {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			continue
		}
		if err := w.Add(d); err != nil {
			return fmt.Errorf("watch %s: %w", d, err)
		}
		watched[filepath.Clean(d)] = true
	}
	if !watched[filepath.Clean(gitdir)] {
		return fmt.Errorf("watch %s: %w", gitdir, errNotGitDir)
	}
	ready()
	dotgit := filepath.Join(root, ".git")
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	pending := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			name := filepath.Clean(ev.Name)
			if (watched[name] && ev.Op.Has(fsnotify.Remove)) || (watched[name] && ev.Op.Has(fsnotify.Rename)) ||
				(name == dotgit && root != gitdir && (ev.Op.Has(fsnotify.Create) || ev.Op.Has(fsnotify.Remove) || ev.Op.Has(fsnotify.Rename))) {
				kick()
				return fmt.Errorf("%w (%s %s)", errWatchLost, ev.Op, ev.Name)
			}
			if !refEvent(gitdir, ev.Name) || pending {
				continue
			}
			pending = true
			timer.Reset(debounce)
		case <-timer.C:
			pending = false
			kick()
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: sync to be safe.
			_ = err
			kick()
		}
	}
}

// refEvent reports whether a changed file can move a ref.
func refEvent(gitdir, name string) bool {
	rel, err := filepath.Rel(gitdir, name)
	if err != nil || strings.HasSuffix(rel, ".lock") {
		return false
	}
	rel = filepath.ToSlash(rel)
	return rel == "HEAD" || rel == "packed-refs" || strings.HasPrefix(rel, "refs/")
}

package gitsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// deepenSteps are the depths fetched, in turn, to find out whether a new
// head descends from the previous one in a shallow clone.
var deepenSteps = []int{64, 1024}

// snapshotCacheSize bounds the object cache of one snapshot's FS.
const snapshotCacheSize = 4 << 20

// mirror is the bare cache clone of one repository. It is used by one
// goroutine at a time (the repository's worker holds its lock).
type mirror struct {
	cfg  RepoConfig
	dir  string
	log  *slog.Logger
	repo *git.Repository
}

func newMirror(cfg RepoConfig, dir string, log *slog.Logger) (*mirror, error) {
	if _, err := authMethod(cfg); err != nil {
		return nil, err
	}
	return &mirror{cfg: cfg, dir: dir, log: log}, nil
}

// authMethod is the remote's credentials as cfg and their files say now:
// a password, token or SSH key rotated in its file is used from the next
// fetch or push on, without a restart (as Flux reads its Secret at every
// reconcile). A file gone or unreadable fails the call, naming it; the
// next poll tries again.
func authMethod(cfg RepoConfig) (transport.AuthMethod, error) {
	a := cfg.Auth
	for _, f := range []struct {
		dst        *string
		file, name string
	}{{&a.Password, a.PasswordFile, "passwordFile"}, {&a.Token, a.TokenFile, "tokenFile"}} {
		if f.file == "" {
			continue
		}
		var err error
		if *f.dst, err = ReadCredential(f.file); err != nil {
			return nil, fmt.Errorf("%w: repo %q: auth.%s: %w (the next poll reads it again)", ErrUnreachable, cfg.Name, f.name, err)
		}
	}
	switch {
	case a.Password != "":
		return &http.BasicAuth{Username: a.Username, Password: a.Password}, nil
	case a.Token != "":
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &http.BasicAuth{Username: user, Password: a.Token}, nil
	case a.SSHKeyFile != "":
		user := "git"
		if u := sshUser(cfg.URL); u != "" {
			user = u
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("%w: repo %q: auth.sshKeyFile %s: %w", ErrInvalidConfig, cfg.Name, a.SSHKeyFile, err)
		}
		db, err := gitssh.NewKnownHostsDb(a.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("%w: repo %q: auth.knownHostsFile %s: %w", ErrInvalidConfig, cfg.Name, a.KnownHostsFile, err)
		}
		keys.HostKeyCallback = pinnedHostKeys(db.HostKeyCallback(), a.KnownHostsFile)
		// Ask the server for a key of a type the file pins: a server has
		// several (GitHub: ECDSA, ed25519, RSA), and left to itself the
		// client takes ECDSA, which a file pinning only the ed25519 key
		// refused as a mismatch.
		keys.HostKeyAlgorithms = db.HostKeyAlgorithms(sshHostPort(cfg.URL))
		return keys, nil
	}
	return nil, nil
}

// sshHostPort is the host:port an ssh URL dials ("" when it does not
// parse; the client then offers every key type).
func sshHostPort(raw string) string {
	ep, err := transport.NewEndpoint(raw)
	if err != nil {
		return ""
	}
	port := ep.Port
	if port <= 0 {
		port = gitssh.DefaultPort
	}
	return net.JoinHostPort(strings.Trim(ep.Host, "[]"), strconv.Itoa(port))
}

func sshUser(raw string) string {
	raw = strings.TrimPrefix(raw, "ssh://")
	if i := strings.IndexByte(raw, '@'); i > 0 && !strings.ContainsAny(raw[:i], "/:") {
		return raw[:i]
	}
	return ""
}

// refSpec is what a fetch asks for and the local ref it lands in.
func (m *mirror) refSpec() (config.RefSpec, plumbing.ReferenceName) {
	switch {
	case m.cfg.Tag != "":
		ref := plumbing.NewTagReferenceName(m.cfg.Tag)
		return config.RefSpec("+" + ref + ":" + ref), ref
	case m.cfg.Commit != "":
		return config.RefSpec("+refs/heads/*:refs/remotes/origin/*"), ""
	default:
		return config.RefSpec(fmt.Sprintf("+refs/heads/%s:refs/remotes/origin/%s", m.cfg.Branch, m.cfg.Branch)),
			plumbing.NewRemoteReferenceName("origin", m.cfg.Branch)
	}
}

// remoteRef is the reference the remote must have: the tracked branch or
// tag ("" for a pinned commit).
func (m *mirror) remoteRef() plumbing.ReferenceName {
	switch {
	case m.cfg.Tag != "":
		return plumbing.NewTagReferenceName(m.cfg.Tag)
	case m.cfg.Commit != "":
		return ""
	}
	return plumbing.NewBranchReferenceName(m.cfg.Branch)
}

func hasRef(refs []*plumbing.Reference, name plumbing.ReferenceName) bool {
	for _, r := range refs {
		if r.Name() == name {
			return true
		}
	}
	return false
}

// open opens the cache clone, creating it when missing.
func (m *mirror) open() error {
	if m.repo != nil {
		return nil
	}
	r, err := git.PlainOpen(m.dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if _, statErr := os.Stat(m.dir); statErr == nil {
			// The directory exists but is not a repository (HEAD deleted,
			// say): treat it as corrupted.
			return fmt.Errorf("%w: %w", ErrCorruptClone, err)
		}
		if err := os.MkdirAll(filepath.Dir(m.dir), 0o755); err != nil {
			return err
		}
		r, err = git.PlainInit(m.dir, true)
		if err == nil {
			_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{m.cfg.URL}})
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptClone, err)
	}
	m.repo = r
	return nil
}

// reset removes the cache clone so the next open clones again.
func (m *mirror) reset() error {
	m.repo = nil
	return os.RemoveAll(m.dir)
}

// fetch brings the tracked ref up to date at the given depth (0: full).
func (m *mirror) fetch(ctx context.Context, depth int) error {
	if err := m.open(); err != nil {
		return err
	}
	if kind, dir := classifyURL(m.cfg.URL); kind == transportLocal {
		return m.localFetch(ctx, dir, depth)
	}
	spec, _ := m.refSpec()
	if m.cfg.Commit != "" {
		depth = 0
	}
	auth, err := authMethod(m.cfg)
	if err != nil {
		return err
	}
	err = remoteCall(ctx, m.cfg, func(ctx context.Context) error {
		return m.repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: "origin",
			RemoteURL:  m.cfg.URL,
			RefSpecs:   []config.RefSpec{spec},
			Depth:      depth,
			Auth:       auth,
			Tags:       git.NoTags,
			Force:      true,
			CABundle:   caBundle(m.cfg),
		})
	})
	if err == nil || errors.Is(err, git.NoErrAlreadyUpToDate) {
		return nil
	}
	return m.classify(ctx, err, auth)
}

// classify turns a fetch error into ErrUnreachable, ErrRefNotFound or
// ErrCorruptClone. An error that is neither a transport error nor a missing
// ref is checked by listing the remote: if the remote answers, the local
// clone is to blame.
func (m *mirror) classify(ctx context.Context, err error, auth transport.AuthMethod) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var noRef git.NoMatchingRefSpecError
	switch {
	case errors.Is(err, ErrTimeout):
		return err
	case errors.As(err, new(*hostKeyError)):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	case errors.As(err, &noRef), errors.Is(err, transport.ErrEmptyRemoteRepository), errors.Is(err, plumbing.ErrReferenceNotFound):
		if m.cfg.Branch != "" {
			refs, listErr := listRemote(ctx, m.cfg, git.NewRemote(nil, &config.RemoteConfig{Name: "origin", URLs: []string{m.cfg.URL}}), auth)
			if errors.Is(err, transport.ErrEmptyRemoteRepository) || errors.Is(listErr, transport.ErrEmptyRemoteRepository) {
				refs = []*plumbing.Reference{}
			}
			return fmt.Errorf("%w: %w", ErrRefNotFound, newMissingBranchError(m.cfg.Branch, refs, err))
		}
		return fmt.Errorf("%w: %w", ErrRefNotFound, err)
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(err.Error(), "ssh: unable to authenticate"): // x/crypto/ssh has no error value for it
		return fmt.Errorf("%w: %w", ErrUnreachable, &credentialsError{cfg: m.cfg, err: err})
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrInvalidAuthMethod):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	if (errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)) && m.intact() {
		return fmt.Errorf("%w: the connection broke off during the transfer: %w", ErrUnreachable, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	remote := git.NewRemote(nil, &config.RemoteConfig{Name: "origin", URLs: []string{m.cfg.URL}})
	refs, listErr := listRemote(ctx, m.cfg, remote, auth)
	if listErr != nil {
		if errors.Is(listErr, transport.ErrEmptyRemoteRepository) {
			if m.cfg.Branch != "" {
				listErr = newMissingBranchError(m.cfg.Branch, []*plumbing.Reference{}, listErr)
			}
			return fmt.Errorf("%w: %w", ErrRefNotFound, listErr)
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	// go-git's transports hand a remote's "reference not found" back as
	// text only: the remote's own list of references says whether the
	// tracked one is missing.
	if want := m.remoteRef(); want != "" && !hasRef(refs, want) {
		if m.cfg.Branch != "" {
			return fmt.Errorf("%w: %w", ErrRefNotFound, newMissingBranchError(m.cfg.Branch, refs, err))
		}
		return fmt.Errorf("%w: %s: %w", ErrRefNotFound, want, err)
	}
	return fmt.Errorf("%w: %w", ErrCorruptClone, err)
}

// intact reports whether the clone still reads back what it had before a
// failed fetch: the tracked commit (or annotated tag) and its tree. A
// clone that has nothing yet is intact. A fetch cut off midway leaves the
// clone as it was (go-git keeps a partial pack out of it), so such a
// failure is the network's, not a reason to delete the cache and clone
// the whole repository again.
func (m *mirror) intact() bool {
	_, local := m.refSpec()
	if local == "" {
		return true // a pinned commit: fetched until it is here
	}
	ref, err := m.repo.Reference(local, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return true
	}
	if err != nil {
		return false
	}
	obj, err := m.repo.Object(plumbing.AnyObject, ref.Hash())
	if err != nil {
		return false
	}
	if c, ok := obj.(*object.Commit); ok {
		_, err = c.Tree()
	}
	return err == nil
}

// head resolves the tracked commit in the cache clone and checks that every
// object of the tree at the configured path reads back.
func (m *mirror) head(checked plumbing.Hash) (*object.Commit, plumbing.Hash, error) {
	_, local := m.refSpec()
	var h plumbing.Hash
	if m.cfg.Commit != "" {
		h = plumbing.NewHash(m.cfg.Commit)
	} else {
		ref, err := m.repo.Reference(local, true)
		if err != nil {
			return nil, plumbing.ZeroHash, fmt.Errorf("%w: %s: %w", ErrCorruptClone, local, err)
		}
		h = ref.Hash()
		// An annotated tag points at a tag object: peel it.
		for range 10 {
			tag, err := m.repo.TagObject(h)
			if err != nil {
				break
			}
			h = tag.Target
		}
	}
	c, err := m.repo.CommitObject(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) && m.cfg.Commit != "" {
		return nil, plumbing.ZeroHash, fmt.Errorf("%w: commit %s is not on any branch of the remote", ErrRefNotFound, m.cfg.Commit)
	}
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%w: commit %s: %w", ErrCorruptClone, h, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%w: tree of %s: %w", ErrCorruptClone, h, err)
	}
	th := tree.Hash
	if m.cfg.Path != "." {
		e, err := tree.FindEntry(m.cfg.Path)
		switch {
		case err == nil && e.Mode == filemode.Submodule:
			return nil, plumbing.ZeroHash, fmt.Errorf("%w: %q in %s is a submodule, which sync does not read: commit the descriptors into this repository, or track the submodule's repository itself",
				ErrPathNotFound, m.cfg.Path, api.ShortCommit(h.String()))
		case errors.Is(err, object.ErrEntryNotFound), errors.Is(err, object.ErrDirectoryNotFound), err == nil && e.Mode != filemode.Dir:
			return nil, plumbing.ZeroHash, fmt.Errorf("%w: %w", ErrPathNotFound, newMissingPathError(tree, m.cfg.Path, h))
		case err != nil:
			return nil, plumbing.ZeroHash, fmt.Errorf("%w: %s: %w", ErrCorruptClone, m.cfg.Path, err)
		}
		th = e.Hash
	}
	var subs []string
	if err := checkTree(m.repo, th, checked, path.Clean(m.cfg.Path), &subs); err != nil {
		return nil, plumbing.ZeroHash, fmt.Errorf("%w: %w", ErrCorruptClone, err)
	}
	for _, p := range subs {
		// Said when the submodule is new or moved (and once a start).
		m.log.Warn("submodule under the descriptor path is not read: descriptors in it are ignored; commit them into this repository, or track the submodule's repository itself",
			"repo", m.cfg.Name, "commit", api.ShortCommit(h.String()), "path", p)
	}
	return c, th, nil
}

// checkTree reads every object under tree h that is not under the same
// name in tree prev (zero: check everything), so corruption surfaces here
// and not halfway through the consumer's reads. Objects of prev were
// checked when they were new. The new submodules it meets are added to
// subs, as paths under dir (the tree's path in the repository).
func checkTree(r *git.Repository, h, prev plumbing.Hash, dir string, subs *[]string) error {
	if h == prev {
		return nil
	}
	t, err := r.TreeObject(h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", h, err)
	}
	old := map[string]plumbing.Hash{}
	if !prev.IsZero() {
		// prev was checked before, so failing to read it now is damage.
		pt, err := r.TreeObject(prev)
		if err != nil {
			return fmt.Errorf("previously checked tree %s: %w", prev, err)
		}
		for _, e := range pt.Entries {
			old[e.Name] = e.Hash
		}
	}
	for _, e := range t.Entries {
		if old[e.Name] == e.Hash {
			continue
		}
		switch e.Mode {
		case filemode.Dir:
			if err := checkTree(r, e.Hash, old[e.Name], path.Join(dir, e.Name), subs); err != nil {
				return err
			}
		case filemode.Submodule:
			*subs = append(*subs, path.Join(dir, e.Name))
		default:
			b, err := r.BlobObject(e.Hash)
			if err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
			rd, err := b.Reader()
			if err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
			_, err = io.Copy(io.Discard, rd)
			rd.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", e.Name, err)
			}
		}
	}
	return nil
}

// update fetches and resolves the head, re-cloning once when the local
// clone turns out to be corrupted.
//
// checked is a tree at the configured path whose objects were already
// checked (zero: none); only what differs from it is read back.
func (m *mirror) update(ctx context.Context, checked plumbing.Hash) (*object.Commit, plumbing.Hash, bool, error) {
	c, th, err := m.tryUpdate(ctx, checked)
	if !errors.Is(err, ErrCorruptClone) {
		return c, th, false, err
	}
	m.log.Warn("git cache clone corrupted; cloning again", "repo", m.cfg.Name, "dir", m.dir, "err", err)
	if rmErr := m.reset(); rmErr != nil {
		return nil, plumbing.ZeroHash, false, fmt.Errorf("%w: remove %s: %w", ErrCorruptClone, m.dir, rmErr)
	}
	c, th, err = m.tryUpdate(ctx, plumbing.ZeroHash)
	return c, th, true, err
}

func (m *mirror) tryUpdate(ctx context.Context, checked plumbing.Hash) (*object.Commit, plumbing.Hash, error) {
	// Open afresh every time: a cached handle would keep serving objects
	// and pack indexes that have since been damaged on disk.
	m.repo = nil
	if m.cfg.Commit != "" {
		// A pinned commit never moves: fetch only until it is here.
		if err := m.open(); err != nil {
			return nil, plumbing.ZeroHash, err
		}
		if _, err := m.repo.CommitObject(plumbing.NewHash(m.cfg.Commit)); err == nil {
			return m.head(checked)
		}
	}
	if err := m.fetch(ctx, 1); err != nil {
		return nil, plumbing.ZeroHash, err
	}
	return m.head(checked)
}

// descends reports whether head descends from prev, deepening a shallow
// clone as needed. known is false when it cannot be told (prev is beyond
// the deepest fetch).
func (m *mirror) descends(ctx context.Context, prev, head plumbing.Hash) (descends, known bool, between []plumbing.Hash) {
	if prev == head {
		return true, true, nil
	}
	d, k, between := m.walk(prev, head)
	m.log.Debug("ancestry walk", "prev", prev, "head", head, "found", d, "known", k)
	for _, depth := range deepenSteps {
		if k || m.cfg.Commit != "" {
			break
		}
		if err := m.fetch(ctx, depth); err != nil {
			m.log.Warn("git deepen fetch failed", "repo", m.cfg.Name, "depth", depth, "err", err)
			break
		}
		d, k, between = m.walk(prev, head)
		m.log.Debug("ancestry walk", "depth", depth, "found", d, "known", k)
	}
	if !d {
		between = nil
	}
	return d, k, between
}

// walk searches head's ancestry for prev in the local objects. between
// are the commits head brings besides itself, newest first (at most
// MaxIncludes once prev is found): the walk goes on past prev on other
// paths (the commits of a branch merged since), but never below prev.
// The shallow list is not consulted: go-git does not drop entries when a
// fetch deepens the clone, so a missing parent object is what marks the
// boundary.
func (m *mirror) walk(prev, head plumbing.Hash) (found, known bool, between []plumbing.Hash) {
	seen := map[plumbing.Hash]bool{head: true}
	queue := []plumbing.Hash{head}
	complete := true
	for len(queue) > 0 && !(found && len(between) >= MaxIncludes) {
		h := queue[0]
		queue = queue[1:]
		if h == prev {
			found = true
			continue
		}
		if h != head {
			between = append(between, h)
		}
		c, err := m.repo.CommitObject(h)
		if err != nil {
			complete = false
			continue
		}
		for _, p := range c.ParentHashes {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	if found {
		return true, true, between
	}
	return false, complete, nil
}

// treeAt returns the hash of the tree at the configured path in commit h,
// or false when the commit or path is not available locally.
func (m *mirror) treeAt(h plumbing.Hash) (plumbing.Hash, bool) {
	c, err := m.repo.CommitObject(h)
	if err != nil {
		return plumbing.ZeroHash, false
	}
	t, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, false
	}
	if m.cfg.Path == "." {
		return t.Hash, true
	}
	e, err := t.FindEntry(m.cfg.Path)
	if err != nil || e.Mode != filemode.Dir {
		return plumbing.ZeroHash, false
	}
	return e.Hash, true
}

// snapshotFS opens an FS over tree th with its own object storage, so the
// consumer can read it while the worker fetches.
func (m *mirror) snapshotFS(th plumbing.Hash, c *object.Commit) TreeFS {
	open := func() storer.EncodedObjectStorer {
		return filesystem.NewStorage(osfs.New(m.dir), cache.NewObjectLRU(snapshotCacheSize))
	}
	return newTreeFS(open(), open, th, c.Committer.When)
}

// caBundle is the PEM bundle an https remote is verified with besides
// the system's roots; nil when none is configured.
func caBundle(cfg RepoConfig) []byte {
	if cfg.Auth.CABundle == "" {
		return nil
	}
	return []byte(cfg.Auth.CABundle)
}

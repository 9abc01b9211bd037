package gitsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// FetchRefs fetches refspecs ("+refs/pull/7/head:refs/capstan/pr/7") of
// the repository cfg names into the bare repository dir (made when
// missing), in full, with cfg's credentials and CA bundle. It is how the
// forge component reads pull-request heads, which the tracked-branch
// cache never has. A refspec the remote does not have gives
// ErrRefNotFound; an unreachable remote or refused credentials
// ErrUnreachable. Callers serialise fetches into one dir.
func FetchRefs(ctx context.Context, cfg RepoConfig, dir string, refspecs ...string) error {
	auth, err := authMethod(cfg)
	if err != nil {
		return err
	}
	r, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return err
		}
		r, err = git.PlainInit(dir, true)
	}
	if err != nil {
		return fmt.Errorf("repo %q: open %s: %w", cfg.Name, dir, err)
	}
	specs := make([]config.RefSpec, len(refspecs))
	for i, s := range refspecs {
		specs[i] = config.RefSpec(s)
		if err := specs[i].Validate(); err != nil {
			return fmt.Errorf("repo %q: refspec %q: %w", cfg.Name, s, err)
		}
	}
	url := cfg.URL
	if kind, local := classifyURL(url); kind == transportLocal {
		url = local
	}
	remote := git.NewRemote(r.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{url}})
	err = remoteCall(ctx, cfg, func(ctx context.Context) error {
		return remote.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin", RefSpecs: specs, Auth: auth, Tags: git.NoTags, Force: true, CABundle: caBundle(cfg)})
	})
	var noRef git.NoMatchingRefSpecError
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.As(err, &noRef), errors.Is(err, plumbing.ErrReferenceNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return &FetchError{Repo: cfg.Name, URL: RedactURL(cfg.URL), Err: fmt.Errorf("%w: %w", ErrRefNotFound, err)}
	case errors.Is(err, ErrTimeout):
		return &FetchError{Repo: cfg.Name, URL: RedactURL(cfg.URL), Err: err}
	}
	// go-git's transports hand "reference not found" back as text only:
	// the remote's own list says whether a ref asked for is missing.
	refs, listErr := listRemote(ctx, cfg, remote, auth)
	if listErr == nil {
		for _, s := range specs {
			if src := plumbing.ReferenceName(s.Src()); !s.IsWildcard() && !hasRef(refs, src) {
				return &FetchError{Repo: cfg.Name, URL: RedactURL(cfg.URL), Ref: src.String(), Err: fmt.Errorf("%w: %s: %w", ErrRefNotFound, src, err)}
			}
		}
	}
	return &FetchError{Repo: cfg.Name, URL: RedactURL(cfg.URL), Err: fmt.Errorf("%w: %w", ErrUnreachable, err)}
}

// ResolveCommit returns the full SHA ref resolves to in a local
// repository.
func ResolveCommit(repoDir, ref string) (string, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return "", err
	}
	c, _, err := resolveTree(r, ref)
	if err != nil {
		return "", err
	}
	return c.Hash.String(), nil
}

// MergeBase returns the best common ancestor of two revisions of a local
// repository: what a pull request is compared with.
func MergeBase(repoDir, a, b string) (string, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return "", err
	}
	ca, _, err := resolveTree(r, a)
	if err != nil {
		return "", err
	}
	cb, _, err := resolveTree(r, b)
	if err != nil {
		return "", err
	}
	bases, err := ca.MergeBase(cb)
	if err != nil {
		return "", fmt.Errorf("merge base of %s and %s: %w", a, b, err)
	}
	if len(bases) == 0 {
		return "", fmt.Errorf("%w: %s and %s have no common ancestor", ErrRefNotFound, a, b)
	}
	return bases[0].Hash.String(), nil
}

// VerifyRef applies cfg's signature policy to the commit ref names in a
// local repository, as sync applies it to a head: nil when the policy is
// off or the commit is signed by a trusted key, else a *SignatureError.
func VerifyRef(cfg RepoConfig, repoDir, ref string) (Signature, error) {
	r, err := openLocal(repoDir)
	if err != nil {
		return Signature{}, err
	}
	c, _, err := resolveTree(r, ref)
	if err != nil {
		return Signature{}, err
	}
	var t *trust
	if cfg.Verify.Enabled {
		if t, err = parseTrust(cfg.Verify); err != nil {
			return Signature{}, fmt.Errorf("%w: repo %q: verify: %w", ErrInvalidConfig, cfg.Name, err)
		}
	}
	return verifyCommit(cfg.Name, c, t)
}

// FetchBranch fetches the tracked branch of cfg into the bare repository
// dir as refs/heads/BRANCH.
func FetchBranch(ctx context.Context, cfg RepoConfig, dir string) error {
	ref := plumbing.NewBranchReferenceName(cfg.Branch)
	return FetchRefs(ctx, cfg, dir, "+"+ref.String()+":"+ref.String())
}

// IsLocal reports whether a repository URL is a local path (or file://)
// and returns the path.
func IsLocal(url string) (string, bool) {
	kind, p := classifyURL(url)
	return p, kind == transportLocal
}

package forge

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// HeadRefFor is the ref a forge keeps pull request n's head at (also for
// forks): refs/merge-requests/N/head on GitLab, refs/pull/N/head on
// GitHub, Gitea and Forgejo.
func HeadRefFor(kind string, n int) string {
	if kind == "gitlab" {
		return "refs/merge-requests/" + strconv.Itoa(n) + "/head"
	}
	return "refs/pull/" + strconv.Itoa(n) + "/head"
}

// GuessKind tells the forge from a remote URL: gitlab when it names
// GitLab, else github (whose head refs Gitea and Forgejo share).
func GuessKind(remoteURL string) string {
	if strings.Contains(strings.ToLower(remoteURL), "gitlab") {
		return "gitlab"
	}
	return "github"
}

// FetchPullRequest fetches pull request n's head from remote into the
// local repository repoDir as refs/capstan/pr/N and returns that ref, for
// `capstan plan --pr N`. It runs the git CLI, so the user's own
// credentials (helpers, SSH agent) reach a private forge; kind "" guesses
// the forge from the remote's URL.
func FetchPullRequest(ctx context.Context, repoDir, remote, kind string, n int) (string, error) {
	if n <= 0 {
		return "", fmt.Errorf("pull request number %d: want a positive number", n)
	}
	if kind == "" {
		url, err := gitOut(ctx, repoDir, "remote", "get-url", remote)
		if err != nil {
			return "", fmt.Errorf("remote %q: %w (pass --remote with the forge's remote)", remote, err)
		}
		kind = GuessKind(url)
	}
	local := "refs/capstan/pr/" + strconv.Itoa(n)
	if _, err := gitOut(ctx, repoDir, "fetch", "--quiet", "--no-tags", remote, "+"+HeadRefFor(kind, n)+":"+local); err != nil {
		return "", fmt.Errorf("fetch pull request %d from %s: %w (check the number, --remote and --forge)", n, remote, err)
	}
	return local, nil
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

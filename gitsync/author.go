package gitsync

import (
	"os"
	"os/user"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
)

// CurrentAuthor is the person running a command in the repository at
// repoDir, as of now: git's user.name and user.email as git itself reads
// them (the repository's configuration over the user's global one over
// the system's), read with go-git, so no git binary is needed. Missing
// parts fall back to the login name, and to LOGIN@HOST for the email.
func CurrentAuthor(repoDir string, now time.Time) Author {
	var name, email string
	if r, err := git.PlainOpenWithOptions(repoDir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true}); err == nil {
		cfg, err := r.ConfigScoped(config.SystemScope)
		if err != nil {
			// An unreadable global or system file: the repository's own.
			cfg, err = r.Config()
		}
		if err == nil {
			name, email = cfg.User.Name, cfg.User.Email
		}
	}
	login := "capstan"
	if u, err := user.Current(); err == nil {
		login = u.Username
	}
	host, _ := os.Hostname()
	return authorOf(name, email, login, host, now)
}

// authorOf fills what git's configuration leaves empty.
func authorOf(name, email, login, host string, now time.Time) Author {
	a := Author{Name: name, Email: email, When: now}
	if a.Name == "" {
		a.Name = login
	}
	if a.Email == "" {
		a.Email = a.Name + "@" + host
	}
	return a
}

package demo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Branch is the branch of the demo repository.
const Branch = "main"

// RepoResult says what Repo found or made.
type RepoResult struct {
	// Dir is the repository's working tree.
	Dir string
	// Created is true when Repo made the repository in this call.
	Created bool
	// Head is the commit at the tip of Branch.
	Head string
	// OtherRegistry is true when a kept repository names no image in the
	// registry Repo was asked for (it was made for another address).
	OtherRegistry bool
}

// ExampleRegistry is the registry the example files name; Repo rewrites it
// to the registry it is given.
const ExampleRegistry = "127.0.0.1:5000"

// Repo makes dir a git repository holding the files of src, committed on
// Branch, unless dir already is one: then it is left as it is, with every
// commit the user made since. Image references to ExampleRegistry in the
// files are rewritten to registryAddr (HOST:PORT), the registry the cluster
// pulls from. When recipient (the cluster's age recipient) is set, the
// example's secrets are made for it (SealSecrets). It needs the git
// command.
func Repo(dir string, src fs.FS, registryAddr, recipient string) (RepoResult, error) {
	res := RepoResult{Dir: dir}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		head, err := git(dir, "rev-parse", "--verify", "-q", Branch)
		if err != nil {
			return res, fmt.Errorf("demo repository %s exists but has no branch %s: %w (remove the directory to recreate it)", dir, Branch, err)
		}
		res.Head = head
		names, err := namesRegistry(dir, registryAddr)
		if err != nil {
			return res, fmt.Errorf("demo repository: %w", err)
		}
		res.OtherRegistry = !names
		return res, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	if _, err := exec.LookPath("git"); err != nil {
		return res, fmt.Errorf("demo repository: the git command is missing: install git (apt-get install git) or pass --repo: %w", err)
	}
	// Build it next to its final place and rename, so an interrupted
	// first start never leaves a half-made repository that a restart
	// would take for the user's.
	tmp := dir + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	if err := os.CopyFS(tmp, src); err != nil {
		return res, fmt.Errorf("demo repository: copy the example files: %w", err)
	}
	if err := retarget(tmp, registryAddr); err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	if recipient != "" {
		if err := SealSecrets(tmp, recipient); err != nil {
			return res, fmt.Errorf("demo repository: %w", err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", Branch},
		{"add", "-A"},
		{"-c", "user.name=" + demoName, "-c", "user.email=" + demoEmail, "commit", "-q", "-m", "Example app: shop (frontend, backend, worker)"},
	} {
		if _, err := git(tmp, args...); err != nil {
			return res, fmt.Errorf("demo repository: %w", err)
		}
	}
	if err := setIdentity(tmp); err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	head, err := git(dir, "rev-parse", Branch)
	if err != nil {
		return res, fmt.Errorf("demo repository: %w", err)
	}
	res.Created, res.Head = true, head
	return res, nil
}

// The author of the demo's first commit, and of the user's commits in it
// when git has no identity of theirs.
const (
	demoName  = "Capstan"
	demoEmail = "capstan@localhost"
)

// setIdentity writes an author into the repository's own config when the
// user's git config has none, so that the walkthrough's first git commit
// works on a fresh machine (git cannot guess an email address as root
// with no domain); a configured identity is left to apply.
func setIdentity(dir string) error {
	for key, value := range map[string]string{"user.name": demoName, "user.email": demoEmail} {
		cmd := exec.Command("git", "config", "--get", key)
		cmd.Dir = dir
		if err := cmd.Run(); err == nil {
			continue // the user's global or system config sets it
		}
		if _, err := git(dir, "config", key, value); err != nil {
			return err
		}
	}
	return nil
}

// retarget rewrites the image references to ExampleRegistry in the files
// under dir to name addr instead.
func retarget(dir, addr string) error {
	if addr == ExampleRegistry {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := RetargetText(b, addr)
		if bytes.Equal(out, b) {
			return nil
		}
		return os.WriteFile(path, out, 0o644)
	})
}

// RetargetText replaces the image references to ExampleRegistry in b
// (written "127.0.0.1:5000/...", quoted) with references to addr.
func RetargetText(b []byte, addr string) []byte {
	return bytes.ReplaceAll(b, []byte(`"`+ExampleRegistry+`/`), []byte(`"`+addr+`/`))
}

// namesRegistry reports whether a file of the working tree dir (outside
// .git) holds an image reference to addr.
func namesRegistry(dir, addr string) (bool, error) {
	want := []byte(`"` + addr + `/`)
	found := false
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found = bytes.Contains(b, want)
		return nil
	})
	return found, err
}

// git runs git in dir, ignoring the system and user configuration so the
// result does not depend on the machine.
func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

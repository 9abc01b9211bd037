package main

import (
	"fmt"
	"github.com/capstanhq/capstan/internal/atomicfile"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/secrets"
)

func newSecretRotateCmd() *cobra.Command {
	var (
		dataDir, repo string
		noCommit      bool
	)
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new cluster key and re-encrypt every secret of the repository for it, as a commit",
		Long: `Run on the server's host. rotate makes a new cluster age key, re-encrypts
every *.secret.yaml of the repository with a new data key for the new
cluster recipient (and for the file's other recipients), replaces the old
cluster recipient in the .capstan/recipients the files were encrypted
from (found as encrypt finds it: with --repo below the repository's top,
maybe the top's) and commits these files only: what else is staged stays
staged. The old key stays
in DATA_DIR/secrets/cluster.agekey, after the new one, so that commits
made before the rotation still decrypt; remove its line once the rotation
commit is pushed and synced (a rollback or revert past the rotation is
then refused by sync for the apps whose secrets it restores). Nothing is
written when a file cannot be decrypted with the cluster key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			old, err := readClusterIdentities(dataDir)
			if err != nil {
				return err
			}
			next, err := age.GenerateX25519Identity()
			if err != nil {
				return err
			}
			oldRecipients := map[string]bool{}
			var oldIDs []age.Identity
			for _, id := range old {
				oldRecipients[id.Recipient().String()] = true
				oldIDs = append(oldIDs, id)
			}
			if repo, err = filepath.Abs(repo); err != nil {
				return err
			}
			files, err := findSecretFiles(repo)
			if err != nil {
				return err
			}
			out := map[string][]byte{}
			for _, p := range files {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				f, err := secrets.Parse(b)
				if err != nil {
					return fmt.Errorf("%w (nothing rotated)", fileError(p, err))
				}
				vals, err := f.Decrypt(oldIDs...)
				if err != nil {
					return fmt.Errorf("%w (nothing rotated)", fileError(p, err))
				}
				rs := []string{next.Recipient().String()}
				for _, r := range f.Recipients {
					if !oldRecipients[r] {
						rs = append(rs, r)
					}
				}
				if out[p], err = secrets.Encrypt(vals, rs, secrets.EncryptOptions{}); err != nil {
					return fmt.Errorf("%w (nothing rotated)", fileError(p, err))
				}
			}
			// The key first, so that the server decrypts the rotation commit.
			keyPath := filepath.Join(clusterKeyDir(dataDir), secrets.IdentityFile)
			text := "# Capstan cluster key (rotated): the first key is current, the others decrypt older commits.\n" + next.String() + "\n"
			for _, id := range old {
				text += id.String() + "\n"
			}
			// Durably: the rotation commit is encrypted for the new key
			// only, so a key file lost to a crash after the push would
			// leave the cluster unable to decrypt it.
			if err := atomicfile.WriteFile(keyPath, []byte(text), 0o600); err != nil {
				return err
			}
			changed := slices.Sorted(func(yield func(string) bool) {
				for p := range out {
					if !yield(p) {
						return
					}
				}
			})
			for _, p := range changed {
				if err := writePrivate(p, out[p]); err != nil {
					return err
				}
			}
			rfiles := recipientsFiles(repo, changed)
			for _, rp := range rfiles {
				if err := replaceRecipient(rp, oldRecipients, next.Recipient().String()); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "new cluster recipient: %s\nre-encrypted %d secret files\n", next.Recipient(), len(changed))
			if noCommit {
				return nil
			}
			// Only these paths: whatever else is staged stays staged.
			paths := relAll(repo, append(rfiles, changed...))
			add := append([]string{"-C", repo, "add", "--"}, paths...)
			commit := append([]string{"-C", repo, "commit", "-q", "-m", "secrets: re-encrypt for the rotated cluster key", "--"}, paths...)
			for _, args := range [][]string{add, commit} {
				if b, err := exec.Command("git", args...).CombinedOutput(); err != nil {
					return fmt.Errorf("git %s: %w\n%s", strings.Join(args[2:], " "), err, b)
				}
			}
			fmt.Fprintln(w, "committed; push it, and once the server has synced it remove the older keys' lines (every key line after the first) from "+keyPath+": commits before the rotation then no longer decrypt, so keep them while you may roll back past it")
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/capstan", "the server's data directory (the key is in DATA_DIR/secrets)")
	cmd.Flags().StringVar(&repo, "repo", ".", "the repository checkout whose secrets to re-encrypt")
	cmd.Flags().BoolVar(&noCommit, "no-commit", false, "write the files but do not commit")
	return cmd
}

// findSecretFiles lists the *.secret.yaml and *.secret.yml files of a
// checkout, outside .git.
func findSecretFiles(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".secret.yaml") || strings.HasSuffix(p, ".secret.yml")) {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// recipientsFiles are the .capstan/recipients files the secret files
// were encrypted from, found as encrypt and edit find them (the nearest
// in the file's directory or above, up to the repository's top): for a
// --repo below the top, the top's. Without any, repo/.capstan/recipients.
func recipientsFiles(repo string, files []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range files {
		if rp, ok := findRecipientsFile(filepath.Dir(p)); ok && !seen[rp] {
			seen[rp] = true
			out = append(out, rp)
		}
	}
	if len(out) == 0 {
		rp, ok := findRecipientsFile(repo)
		if !ok {
			rp = filepath.Join(repo, recipientsFile)
		}
		out = append(out, rp)
	}
	slices.Sort(out)
	return out
}

// replaceRecipient writes recipient in a recipients file in place of the
// old ones.
func replaceRecipient(p string, old map[string]bool, recipient string) error {
	var lines []string
	if b, err := os.ReadFile(p); err == nil {
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			if !old[strings.TrimSpace(l)] {
				lines = append(lines, l)
			}
		}
	}
	lines = append(lines, recipient)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func relAll(root string, ps []string) []string {
	var out []string
	for _, p := range ps {
		if r, err := filepath.Rel(root, p); err == nil {
			out = append(out, r)
		}
	}
	return out
}

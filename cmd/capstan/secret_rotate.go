package main

import (
	"fmt"
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
cluster recipient in .capstan/recipients and commits. The old key stays
in DATA_DIR/secrets/cluster.agekey, after the new one, so that commits
made before the rotation still decrypt; remove its line once the rotation
commit is synced and pushed. Nothing is written when a file cannot be
decrypted with the cluster key.`,
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
			if err := writeKeyFile(keyPath, []byte(text)); err != nil {
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
			rp := filepath.Join(repo, recipientsFile)
			var lines []string
			if b, err := os.ReadFile(rp); err == nil {
				for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
					if !oldRecipients[strings.TrimSpace(l)] {
						lines = append(lines, l)
					}
				}
			}
			lines = append(lines, next.Recipient().String())
			if err := os.MkdirAll(filepath.Dir(rp), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(rp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "new cluster recipient: %s\nre-encrypted %d secret files\n", next.Recipient(), len(changed))
			if noCommit {
				return nil
			}
			add := append([]string{"-C", repo, "add", "--", recipientsFile}, relAll(repo, changed)...)
			for _, args := range [][]string{add, {"-C", repo, "commit", "-q", "-m", "secrets: re-encrypt for the rotated cluster key"}} {
				if b, err := exec.Command("git", args...).CombinedOutput(); err != nil {
					return fmt.Errorf("git %s: %w\n%s", strings.Join(args[2:], " "), err, b)
				}
			}
			fmt.Fprintln(w, "committed; push it, then remove the old key's line from "+keyPath)
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

func relAll(root string, ps []string) []string {
	var out []string
	for _, p := range ps {
		if r, err := filepath.Rel(root, p); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// writeKeyFile replaces a key file, 0600.
func writeKeyFile(p string, b []byte) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

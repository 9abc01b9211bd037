package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/capstanhq/capstan/apiserver/backup"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// passphraseEnv holds a backup passphrase when --passphrase-file is not
// given.
const passphraseEnv = "CAPSTAN_BACKUP_PASSPHRASE"

// keyFlags are the encryption flags of backup and restore.
type keyFlags struct {
	passphraseFile string
	recipients     []string
	recipientFiles []string
	identityFiles  []string
}

// key reads the flags' files: the passphrase is the passphrase file's
// first line, else $CAPSTAN_BACKUP_PASSPHRASE.
func (f *keyFlags) key() (backup.Key, error) {
	var k backup.Key
	if f.passphraseFile != "" {
		b, err := os.ReadFile(f.passphraseFile)
		if err != nil {
			return k, fmt.Errorf("--passphrase-file: %w", err)
		}
		k.Passphrase, _, _ = strings.Cut(string(b), "\n")
		if k.Passphrase = strings.TrimRight(k.Passphrase, "\r"); k.Passphrase == "" {
			return k, fmt.Errorf("--passphrase-file %s: the first line is empty", f.passphraseFile)
		}
	} else if len(f.recipients)+len(f.recipientFiles)+len(f.identityFiles) == 0 {
		k.Passphrase = os.Getenv(passphraseEnv)
	}
	k.Recipients = append(k.Recipients, f.recipients...)
	for _, p := range f.recipientFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return k, fmt.Errorf("--recipients-file: %w", err)
		}
		k.Recipients = append(k.Recipients, string(b))
	}
	for _, p := range f.identityFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return k, fmt.Errorf("--identity: %w", err)
		}
		k.Identities = append(k.Identities, string(b))
	}
	return k, nil
}

func newBackupCmd() *cobra.Command {
	var kf keyFlags
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write an encrypted backup of the running cluster: store, CA and keys, tokens",
		Long: `Write a backup of the cluster to FILE, through the API (admins only): a
consistent copy of the store (one read transaction; writes go on meanwhile),
the cluster CA and every key and certificate of the server's data directory,
the tokens and admin.yaml. It holds the CA's private key, so it is always
encrypted with age: with a passphrase (--passphrase-file, or
$` + passphraseEnv + `) or for age recipients (--recipient age1...,
--recipients-file). Restore it with 'capstan restore'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := kf.key()
			if err != nil {
				return err
			}
			if k.Passphrase == "" && len(k.Recipients) == 0 {
				return fmt.Errorf("no key: give --passphrase-file FILE, set %s, or --recipient age1... (a backup holds the CA's key and is never written in the clear)", passphraseEnv)
			}
			if err := checkBackupPath(args[0]); err != nil {
				return err
			}
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			body, err := c.Backup(cmd.Context())
			if err != nil {
				return fmt.Errorf("backup: %w", err)
			}
			defer body.Close()
			m, err := writeSealed(args[0], body, k)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "backup of revision %d (%s store, %d files, CA %s) written to %s\n", m.Revision, m.Store, len(m.Files)+1, m.CAHash, args[0])
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&kf.passphraseFile, "passphrase-file", "", "encrypt with the passphrase on this file's first line (age scrypt; default $"+passphraseEnv+")")
	fl.StringSliceVar(&kf.recipients, "recipient", nil, "encrypt for this age public key, age1... (repeatable)")
	fl.StringSliceVar(&kf.recipientFiles, "recipients-file", nil, "encrypt for the age public keys in this file (repeatable)")
	return cmd
}

// checkBackupPath refuses, before the server makes a backup, a FILE that
// is a directory or whose directory does not exist.
func checkBackupPath(path string) error {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("backup: %s is a directory: name the file to write, such as %s", path, filepath.Join(path, "cluster.age"))
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("backup: the directory %s of %s does not exist: make it first, or name a file in another one", dir, path)
	}
	return nil
}

// writeSealed copies the backup stream body, checked as it passes, into
// path encrypted for k: a temporary file renamed into place once the whole
// backup is in and synced, so path never holds a partial backup.
func writeSealed(path string, body io.Reader, k backup.Key) (m backup.Manifest, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	sealed, err := backup.Seal(f, k)
	if err != nil {
		return m, err
	}
	if m, err = backup.Verify(io.TeeReader(body, sealed)); err != nil {
		return m, fmt.Errorf("backup: the server's stream: %w; nothing was written to %s (the server's log says why; run the backup again)", err, path)
	}
	if err = sealed.Close(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err = f.Sync(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err = f.Close(); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return m, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

func newRestoreCmd() *cobra.Command {
	var kf keyFlags
	var dataDir string
	var bump int64
	cmd := &cobra.Command{
		Use:   "restore FILE --data-dir DIR",
		Short: "Make a server's data directory from a backup",
		Long: `Decrypt the backup FILE (made by 'capstan backup') and unpack it into a new
data directory DIR (one that does not exist, or is empty): the store, the
cluster CA and keys, the tokens and admin.yaml. Then start the server on it
with 'capstan server --data-dir DIR': it has the same objects, revisions,
tokens and CA, so agents and admins keep their credentials (give them the
new server's URL with --server when its address changed). The store's
revision moves forward by --bump-revision and every earlier revision counts
as compacted, so clients that saw revisions of the old server after the
backup list again instead of resuming in a history the restore replaced
(as etcdutl snapshot restore --bump-revision --mark-compacted).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dataDir == "" {
				return fmt.Errorf("restore: give the new data directory with --data-dir DIR")
			}
			if bump < 1 {
				return fmt.Errorf("restore: --bump-revision %d: want 1 or more (default %d), more than the writes the old server made after the backup", bump, int64(store.DefaultRestoreBump))
			}
			k, err := kf.key()
			if err != nil {
				return err
			}
			if k.Passphrase == "" && len(k.Identities) == 0 {
				return fmt.Errorf("restore: no key: give the backup's passphrase with --passphrase-file FILE or $%s, or the age identity file of one of its recipients with --identity FILE", passphraseEnv)
			}
			f, err := os.Open(args[0])
			if err != nil {
				return fmt.Errorf("restore: %w", err)
			}
			defer f.Close()
			r, err := backup.Open(f, k)
			if err != nil {
				return err
			}
			// The store's revision is bumped before the directory is
			// published (renamed into place, or unmarked), so that a crash
			// in between never leaves a server a store it would serve with
			// the old server's revisions.
			m, err := backup.Restore(r, dataDir, func(dir string, m backup.Manifest) error {
				if m.Store == "etcd" {
					return nil
				}
				return prepareRestoredStore(dir, m, bump)
			})
			if errors.Is(err, backup.ErrDamaged) {
				return fmt.Errorf("%w; nothing was restored into %s: copy %s again from where it was kept, or restore another backup", err, dataDir, args[0])
			}
			if err != nil {
				return err
			}
			if m.Store == "etcd" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored the CA, keys and tokens into %s; the store is an etcd snapshot (revision %d or later): restore it into a new etcd cluster with\n"+
					"  etcdutl snapshot restore %s --bump-revision %d --mark-compacted --data-dir ETCD_DATA_DIR ...\n"+
					"(etcdutl of etcd 3.5.10 or newer: Debian 12's etcd 3.4 has no etcdutl, and its etcdctl snapshot restore cannot bump the revision; see docs/ha.md)\n"+
					"then start the servers with --store etcd, the first with --data-dir %s; the snapshot is no state of theirs (backups leave it out): remove it once etcd runs on it\n",
					dataDir, m.Revision, filepath.Join(dataDir, m.RestoredStore()), bump, dataDir)
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored revision %d (backup of %s, CA %s) into %s; the store goes on from revision %d\nstart the server with: capstan server --data-dir %s\n%s",
				m.Revision, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), m.CAHash, dataDir, m.Revision+bump, dataDir, knownAddress(dataDir))
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data-dir", "", "the new data directory (must not exist, or be empty)")
	fl.Int64Var(&bump, "bump-revision", store.DefaultRestoreBump, "how far the restored store's revision moves forward: more than the writes the old server made after the backup")
	fl.StringVar(&kf.passphraseFile, "passphrase-file", "", "the backup's passphrase, on this file's first line (default $"+passphraseEnv+")")
	fl.StringSliceVar(&kf.identityFiles, "identity", nil, "an age identity file (AGE-SECRET-KEY-1...) of a recipient of the backup (repeatable)")
	return cmd
}

// prepareRestoredStore bumps the restored store's revision (see
// store.BumpRevision) and opens it once: it must pass bbolt's check and
// hold the revision expected.
func prepareRestoredStore(dir string, m backup.Manifest, bump int64) error {
	if m.Store != "bbolt" {
		return fmt.Errorf("restore: the backup's store is %q; this command restores bbolt stores", m.Store)
	}
	path := filepath.Join(dir, backup.StoreFile)
	rev, err := store.BumpRevision(path, bump)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// NoRecord: the server that serves it, maybe of another release
	// than this binary, records its own version.
	st, err := store.Open(path, store.Options{NoRecord: true})
	if err != nil {
		return fmt.Errorf("restore: the restored store: %w", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		return fmt.Errorf("restore: the restored store is damaged: %w", err)
	}
	if want := m.Revision + bump; rev != want || st.Revision() != want {
		return fmt.Errorf("restore: the restored store is at revision %d, want %d (the backup's %d and %d more)", st.Revision(), want, m.Revision, bump)
	}
	return nil
}

// knownAddress tells where the agents and the admin look for the server
// restored into dir: the address in its admin.yaml, which the server does
// not rewrite. Empty when there is none to read.
func knownAddress(dir string) string {
	cfg, err := wire.LoadConfig(filepath.Join(dir, "admin.yaml"))
	if err != nil || len(cfg.URLs()) == 0 {
		return ""
	}
	return fmt.Sprintf("the agents and %s know the old server as %s: serve the restored one there (--listen, on a machine that has that address), or give them its new address (the agents' --server, admin.yaml's server:)\n",
		filepath.Join(dir, "admin.yaml"), strings.Join(cfg.URLs(), ", "))
}

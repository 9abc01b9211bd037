package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/capstanhq/capstan/internal/atomicfile"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/capstanhq/capstan/secrets"
)

// recipientsFile lists, in a repository, the age recipients its secrets
// are encrypted for: the cluster's and the team's, one a line.
const recipientsFile = ".capstan/recipients"

func newSecretCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Encrypt, decrypt and edit the secret files of a repository",
		Long: `Secret files hold an app's secrets in git: keys in clear, values encrypted
for the cluster's age key and for the team's own keys (see docs/secrets.md).
Name them NAME.secret.yaml and declare them in the app:

  apps: shop: secrets: db: from: "secrets/db.secret.yaml"`,
	}
	cmd.AddCommand(newSecretRecipientCmd(), newSecretEncryptCmd(), newSecretDecryptCmd(), newSecretEditCmd(), newSecretRotateCmd())
	return cmd
}

func clusterKeyDir(dataDir string) string { return filepath.Join(dataDir, "secrets") }

func newSecretRecipientCmd() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "recipient",
		Short: "Print the cluster's age recipient (commit it to .capstan/recipients)",
		Long: `Print the cluster's age recipient: from the server named by the client
config (--config, $CAPSTAN_CONFIG), or, with --data-dir, from the key
file of a server on this machine. Without either, and without a client
config at the default path, the key file of /var/lib/capstan.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("data-dir") {
				c, err := newClient(cmd)
				if err == nil {
					r, err := c.SecretsRecipient(cmd.Context())
					if err != nil {
						return fmt.Errorf("ask the server for its recipient: %w (or run on the server with --data-dir)", err)
					}
					_, err = fmt.Fprintln(cmd.OutOrStdout(), r.Recipient)
					return err
				}
				// A config named on purpose is not silently passed over
				// for the local key file.
				if cmd.Flags().Changed("config") || os.Getenv("CAPSTAN_CONFIG") != "" {
					return fmt.Errorf("%w (or run on the server with --data-dir)", err)
				}
			}
			ids, err := readClusterIdentities(dataDir)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), ids[0].Recipient())
			return err
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/capstan", "the server's data directory (the key is in DATA_DIR/secrets)")
	return cmd
}

func readClusterIdentities(dataDir string) ([]*age.X25519Identity, error) {
	p := filepath.Join(clusterKeyDir(dataDir), secrets.IdentityFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no cluster key at %s: start the server (capstan server or up) once with --data-dir %s, which creates it", p, dataDir)
	}
	if err != nil {
		return nil, err
	}
	ids, err := secrets.ParseIdentities(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return ids, nil
}

// identityFlags are where decrypt and edit find keys.
type identityFlags struct {
	files   []string
	dataDir string
}

func (f *identityFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&f.files, "identity", "i", nil, "age identity file (AGE-SECRET-KEY-1...); default $CAPSTAN_AGE_KEY_FILE, else the cluster key of --data-dir")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "the server's data directory, whose cluster key decrypts when no --identity is given")
}

// own reports whether the identities are the user's (--identity or
// $CAPSTAN_AGE_KEY_FILE), not the cluster key of --data-dir.
func (f *identityFlags) own() bool {
	return len(f.files) > 0 || os.Getenv("CAPSTAN_AGE_KEY_FILE") != ""
}

func (f *identityFlags) identities() ([]age.Identity, error) {
	files := f.files
	if len(files) == 0 {
		if env := os.Getenv("CAPSTAN_AGE_KEY_FILE"); env != "" {
			files = []string{env}
		}
	}
	var out []age.Identity
	if len(files) == 0 {
		ids, err := readClusterIdentities(f.dataDir)
		if err != nil {
			return nil, fmt.Errorf("%w (or give your own key with --identity)", err)
		}
		for _, id := range ids {
			out = append(out, id)
		}
		return out, nil
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		ids, err := secrets.ParseIdentities(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, id := range ids {
			out = append(out, id)
		}
	}
	return out, nil
}

// recipientsFor returns the recipients of a secret file: those given,
// and those of the repository's .capstan/recipients (looked for in the
// file's directory and its parents).
func recipientsFor(file string, given []string) ([]string, error) {
	out := slices.Clone(given)
	if p, ok := findRecipientsFile(filepath.Dir(file)); ok {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out = append(out, parseRecipients(string(b))...)
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("no recipients for %s: commit the cluster's recipient (capstan secret recipient) to %s, or give -r age1...", file, recipientsFile)
	}
	return out, nil
}

// findRecipientsFile returns the absolute path of the .capstan/recipients
// that holds for the files of dir: in dir or its nearest parent, up to
// the repository's top (the directory holding .git).
func findRecipientsFile(dir string) (string, bool) {
	dir, _ = filepath.Abs(dir)
	for {
		p := filepath.Join(dir, recipientsFile)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return "", false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func parseRecipients(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// parsePlain reads a plaintext secret: a YAML map of keys to strings.
// It reads the YAML's nodes, not Go values, so that no error quotes a
// value: yaml's own decoding errors do (cannot unmarshal !!str `s3cre...`,
// cannot decode !!str `...` as a !!int), and they reach the terminal and
// CI logs.
func parsePlain(b []byte) (map[string]string, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]string{}, nil
	}
	if _, err := secrets.Parse(b); err == nil {
		// Its capstan: section is not a value to quote.
		return nil, errors.New("already encrypted (it has a capstan: section): change its values with capstan secret edit, add a recipient with capstan secret edit -r age1..., read it with capstan secret decrypt")
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not a YAML map of keys to values: %w", err)
	}
	for {
		// Only the first document would be read.
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("after the first YAML document: %w", err)
		}
		if len(extra.Content) > 0 && extra.Content[0].Tag != "!!null" {
			return nil, fmt.Errorf("line %d: a second YAML document (after ---): a secret is one map of keys to values; put every key in the first document, or each document in a file of its own", extra.Line)
		}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return map[string]string{}, nil
		}
		root = root.Content[0]
	}
	root = unalias(root)
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return map[string]string{}, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: not a YAML map of keys to values (key: value, a line each)", root.Line)
	}
	out := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := unalias(root.Content[i]), unalias(root.Content[i+1])
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			return nil, fmt.Errorf("line %d: a key must be a plain name (no list, map or merge key <<)", k.Line)
		}
		if at, dup := lines[k.Value]; dup {
			return nil, fmt.Errorf("line %d: key %q is given twice (first on line %d)", k.Line, k.Value, at)
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			return nil, fmt.Errorf("line %d: key %q: the value must be a string (quote it)", v.Line, k.Value)
		}
		out[k.Value], lines[k.Value] = v.Value, k.Line
	}
	return out, nil
}

// unalias is the node an alias (*name) stands for, or n.
func unalias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func plainYAML(vals map[string]string) []byte {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range vals {
			if !yield(k) {
				return
			}
		}
	}) {
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: vals[k]})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(root)
	_ = enc.Close()
	return buf.Bytes()
}

func newSecretEncryptCmd() *cobra.Command {
	var (
		recipients []string
		out        string
		inPlace    bool
	)
	cmd := &cobra.Command{
		Use:   "encrypt FILE",
		Short: "Encrypt a plaintext YAML map of keys to values into a secret file",
		Long: `Encrypt FILE, a YAML map of keys to string values, for the recipients of
the repository's .capstan/recipients and those given with -r. The result
goes to stdout, to --output, or over FILE with --in-place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			plain, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			vals, err := parsePlain(plain)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			rs, err := recipientsFor(args[0], recipients)
			if err != nil {
				return err
			}
			enc, err := secrets.Encrypt(vals, rs, secrets.EncryptOptions{})
			if err != nil {
				return fmt.Errorf("encrypt %s: %w", args[0], err)
			}
			switch {
			case inPlace:
				return writePrivate(args[0], enc)
			case out != "":
				return writePrivate(out, enc)
			}
			_, err = cmd.OutOrStdout().Write(enc)
			return err
		},
	}
	cmd.Flags().StringArrayVarP(&recipients, "recipient", "r", nil, "an age recipient (age1...) to encrypt for, besides .capstan/recipients")
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the encrypted file here")
	cmd.Flags().BoolVar(&inPlace, "in-place", false, "replace FILE with its encrypted form")
	return cmd
}

func writePrivate(p string, b []byte) error {
	return atomicfile.WriteFile(p, b, 0o644)
}

func newSecretDecryptCmd() *cobra.Command {
	var ids identityFlags
	cmd := &cobra.Command{
		Use:   "decrypt FILE",
		Short: "Print a secret file's keys and values (plaintext YAML)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vals, _, err := decryptFile(args[0], &ids)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(plainYAML(vals))
			return err
		},
	}
	ids.add(cmd)
	return cmd
}

func decryptFile(p string, ids *identityFlags) (map[string]string, *secrets.File, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	f, err := secrets.Parse(b)
	if err != nil {
		return nil, nil, fileError(p, err)
	}
	keys, err := ids.identities()
	if err != nil {
		return nil, nil, err
	}
	vals, err := f.Decrypt(keys...)
	if errors.Is(err, secrets.ErrNoIdentity) && ids.own() {
		// The library's advice (encrypt for the cluster's recipient) is
		// for the server; a team member's key needs a recipient to add it.
		var rs []string
		for _, k := range keys {
			if x, ok := k.(*age.X25519Identity); ok {
				rs = append(rs, x.Recipient().String())
			}
		}
		r := strings.Join(rs, " -r ")
		return nil, nil, fmt.Errorf("%s: %w: the key of your --identity (recipient %s) is not among the file's recipients (%s): ask one of them to add it with capstan secret edit -r %s %s",
			p, secrets.ErrNoIdentity, strings.Join(rs, ", "), strings.Join(f.Recipients, ", "), r, p)
	}
	if err != nil {
		return nil, nil, fileError(p, err)
	}
	return vals, f, nil
}

// fileError prefixes err with the file's name as the server does:
// "file:3:5: msg" for an error at a line, "file: msg" for the others.
func fileError(p string, err error) error {
	if fe, ok := err.(*secrets.Error); ok && fe.Line > 0 {
		return fmt.Errorf("%s:%w", p, err)
	}
	return fmt.Errorf("%s: %w", p, err)
}

func newSecretEditCmd() *cobra.Command {
	var (
		ids        identityFlags
		recipients []string
		removed    []string
	)
	cmd := &cobra.Command{
		Use:   "edit FILE",
		Short: "Edit a secret file in $EDITOR (a new FILE starts empty)",
		Long: `Decrypt FILE into a private temporary file (in memory, /dev/shm, where
there is one), open $EDITOR on it, and encrypt the result back into FILE.
Values that did not change keep their encrypted form, so the diff of the
commit shows which keys changed. A FILE that does not exist, or is empty,
starts empty. A text that cannot be saved (not YAML, a value that is not
a string, too large) reopens in $EDITOR with the error at the top; save it
unchanged or empty to give up.

FILE is encrypted for its own recipients, those of .capstan/recipients and
those given with -r; --remove-recipient takes one out. Changed recipients
make a new data key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			vals := map[string]string{}
			var prev *secrets.File
			var prevIDs []age.Identity
			b, err := os.ReadFile(p)
			switch {
			case errors.Is(err, fs.ErrNotExist), err == nil && len(bytes.TrimSpace(b)) == 0:
				// A new secret, or an empty file: it starts empty.
			case err != nil:
				return err
			default:
				if vals, prev, err = decryptFile(p, &ids); err != nil {
					return err
				}
				if prevIDs, err = ids.identities(); err != nil {
					return err
				}
			}
			// The file's recipients stay (some were given with -r), as
			// rotate keeps them; --remove-recipient takes one out.
			given := slices.Clone(recipients)
			if prev != nil {
				given = append(given, prev.Recipients...)
			}
			rs, err := recipientsFor(p, given)
			if err != nil {
				return err
			}
			if rs, err = removeRecipients(p, rs, removed); err != nil {
				return err
			}
			for _, r := range rs {
				if _, err := age.ParseX25519Recipient(r); err != nil {
					return fmt.Errorf("recipient %q (of %s, %s or -r): %w", r, p, recipientsFile, err)
				}
			}
			if prev != nil && !slices.Equal(rs, sortedCopy(prev.Recipients)) {
				prev = nil // new recipients: a new data key
			}
			// The recipients are good: what Encrypt refuses now is the
			// text's to fix.
			var enc []byte
			err = editUntilValid(editText, plainYAML(vals), func(text []byte) error {
				next, err := parsePlain(text)
				if err != nil {
					return err
				}
				enc, err = secrets.Encrypt(next, rs, secrets.EncryptOptions{Previous: prev, PreviousIDs: prevIDs})
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			return writePrivate(p, enc)
		},
	}
	ids.add(cmd)
	cmd.Flags().StringArrayVarP(&recipients, "recipient", "r", nil, "an age recipient (age1...) to encrypt for, besides the file's own and .capstan/recipients")
	cmd.Flags().StringArrayVar(&removed, "remove-recipient", nil, "an age recipient (age1...) to encrypt for no more (a new data key)")
	return cmd
}

// removeRecipients takes the removed recipients out of rs.
func removeRecipients(file string, rs, removed []string) ([]string, error) {
	for _, r := range removed {
		if !slices.Contains(rs, r) {
			return nil, fmt.Errorf("--remove-recipient %s: not a recipient of %s (its recipients: %s)", r, file, strings.Join(rs, ", "))
		}
	}
	out := slices.DeleteFunc(slices.Clone(rs), func(r string) bool { return slices.Contains(removed, r) })
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: --remove-recipient would leave no recipient: keep the cluster's", file)
	}
	return out, nil
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// errorMark starts the lines of the error shown at the top of a text
// reopened in the editor; they are taken out before it is shown again.
const errorMark = "#| "

// editUntilValid runs edit on text until check accepts what was saved.
// When check refuses it, the editor reopens on the saved text with the
// error at the top, as a comment, so that nothing typed is lost; saving
// that unchanged or empty gives up.
func editUntilValid(edit func([]byte) ([]byte, error), text []byte, check func([]byte) error) error {
	edited, err := edit(text)
	for {
		if err != nil {
			return err
		}
		cerr := check(edited)
		if cerr == nil {
			return nil
		}
		before := withoutError(edited)
		if edited, err = edit(withError(edited, cerr)); err != nil {
			return err
		}
		if after := withoutError(edited); bytes.Equal(after, before) || len(bytes.TrimSpace(after)) == 0 {
			return fmt.Errorf("%w (nothing written: the text was left unchanged or empty)", cerr)
		}
	}
}

func withError(text []byte, err error) []byte {
	var b bytes.Buffer
	b.WriteString(errorMark + "The text below was not saved: fix it and save to try again;\n")
	b.WriteString(errorMark + "save it unchanged, or empty, to give up (nothing is written):\n")
	for _, l := range strings.Split(err.Error(), "\n") {
		b.WriteString(errorMark + "  " + l + "\n")
	}
	b.Write(withoutError(text))
	return b.Bytes()
}

// withoutError takes out the error lines withError put at the top.
func withoutError(text []byte) []byte {
	for bytes.HasPrefix(text, []byte(strings.TrimSpace(errorMark))) {
		i := bytes.IndexByte(text, '\n')
		if i < 0 {
			return nil
		}
		text = text[i+1:]
	}
	return text
}

// editText runs $EDITOR on text in a private temporary file, removed
// afterwards, and returns what was saved.
func editText(text []byte) ([]byte, error) {
	base := ""
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		base = "/dev/shm"
	}
	dir, err := os.MkdirTemp(base, "capstan-secret-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "secret.yaml")
	if err := os.WriteFile(p, text, 0o600); err != nil {
		return nil, err
	}
	editor := os.Getenv("EDITOR")
	if editor == "" {
		editor = "vi"
	}
	parts := strings.Fields(editor)
	// A hang-up or SIGTERM stops the editor, so that the plaintext is
	// removed before capstan exits. Not SIGINT: the editor takes Ctrl-C
	// for itself, and so does git while it runs one.
	stopped, stop := signal.NotifyContext(context.Background(), syscall.SIGHUP, syscall.SIGTERM)
	defer stop()
	c := exec.CommandContext(stopped, parts[0], append(parts[1:], p)...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGHUP) }
	c.WaitDelay = 5 * time.Second // then it is killed
	err = c.Run()
	if stopped.Err() != nil {
		return nil, fmt.Errorf("%v while the editor ran (nothing written)", context.Cause(stopped))
	}
	if err != nil {
		return nil, fmt.Errorf("editor %s: %w (nothing written)", editor, err)
	}
	return os.ReadFile(p)
}

package schema

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/secrets"
)

// Config files of a pod group (files: in the descriptor). The converter
// turns each into an api.PodFile; a file whose content comes from the
// repository (from) is read after evaluation, by ResolveFiles, because
// the evaluation may run in a process that has only the descriptor files
// (schema/sandbox). Until then the file carries FromAt, the position of
// its from field, for the errors of the read.

// dFile is one entry of a pod group's files.
type dFile struct {
	From    *string     `json:"from"`
	Content *string     `json:"content"`
	Secret  *dSecretRef `json:"secret"`
	Mode    int32       `json:"mode"`
}

// fromRef is a file whose content is to be read from the repository:
// where it is in the app, and where the descriptor names it.
type fromRef struct {
	workload, file int
	desc           []string
}

func (c *converter) files(t *api.PodTemplate, files map[string]dFile, desc []string, tp string) {
	for i, p := range sortedKeys(files) {
		d := files[p]
		fdesc := append(append([]string{}, desc...), p)
		c.note(fmt.Sprintf("%s.files[%d]", tp, i), fdesc...)
		c.note(fmt.Sprintf("%s.files[%d].mode", tp, i), append(fdesc, "mode")...)
		c.note(fmt.Sprintf("%s.files[%d].content", tp, i), fdesc...)
		f := api.PodFile{Path: p, Mode: d.Mode}
		n := 0
		for _, set := range []bool{d.From != nil, d.Content != nil, d.Secret != nil} {
			if set {
				n++
			}
		}
		switch {
		case n > 1:
			c.fail(fdesc, "set one of from, content and secret, not several")
		case n == 0:
			c.fail(fdesc, "set from (a file of the repository), content or secret")
		case d.Secret != nil:
			wi, fi := c.workloads, i
			f.Secret = c.secretRef(d.Secret, append(fdesc, "secret"), func(app *api.App) *api.SecretKeyRef {
				return app.Spec.Workloads[wi].Spec.Template.Files[fi].Secret
			})
		case d.Content != nil:
			f.Content = *d.Content
		default:
			f.From = *d.From
			if why := cleanRepoPath(f.From); why != "" {
				c.fail(append(fdesc, "from"), "%q %s", f.From, why)
			} else if isSecretFile(f.From) {
				// Its ciphertext would reach the containers, not its values.
				c.fail(append(fdesc, "from"), "%q is an encrypted secret file: declare it under apps.%s.secrets and take a key as a file with secret: {name, key}", f.From, c.app)
			}
			c.refs = append(c.refs, fromRef{workload: c.workloads, file: i, desc: append(fdesc, "from")})
		}
		t.Files = append(t.Files, f)
	}
}

// cleanRepoPath reports why p cannot name a file of the repository, or
// "" when it can: a relative slash path that stays inside the tree.
func cleanRepoPath(p string) string {
	switch {
	case strings.HasPrefix(p, "/") || strings.HasPrefix(p, `\`):
		return "is an absolute path: from is relative to the descriptor root of the repository"
	case strings.Contains(p, `\`):
		return "contains a backslash: write paths with /"
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return "leaves the repository"
	case !fs.ValidPath(p) || p == ".":
		return fmt.Sprintf("is not a clean path inside the repository (write %s)", path.Clean(p))
	}
	return ""
}

// placeRefs gives each file to be read the position of its from field.
func (c *converter) placeRefs(app *api.App, pl placer) {
	for _, r := range c.refs {
		se := pl.one(problem{path: r.desc})
		se.Message = ""
		app.Spec.Workloads[r.workload].Spec.Template.Files[r.file].FromAt = &se
	}
	for _, r := range c.secretRefs {
		se := pl.one(problem{path: r.desc})
		se.Message = ""
		if r.secret >= 0 {
			app.Spec.Secrets[r.secret].FromAt = &se
		} else {
			r.locate(app).At = &se
		}
	}
}

// ResolveOptions bound ResolveFiles.
type ResolveOptions struct {
	// PathPrefix is the descriptor root inside the repository, prepended
	// to file names in errors (as LoadOptions.PathPrefix).
	PathPrefix string
	// Keys decrypt the apps' secret files and seal their values. Nil
	// checks only the files' format and the keys they declare (capstan
	// plan and validate, which have no cluster key): versions are then
	// fingerprints of the encrypted values, and nothing is sealed.
	Keys *secrets.Keyring
	// RequireKeys refuses secrets when Keys is nil (git sync: an app's
	// secrets must be decrypted to run).
	RequireKeys bool
	// Recipients, with Keys nil, are the cluster's age recipients
	// (age1...; the current first, then the older ones of a rotation
	// under way, as Keyring.Recipients gives them): a secret file that
	// lists none of them is an error, the one sync would give (capstan
	// plan against a server).
	Recipients []string
	// Cache, when set, keeps what opening each secret file gave, so that
	// a sync decrypts only the files that changed.
	Cache *SecretCache
	// Previous returns the app as stored (nil for none): its sealed
	// values are kept for the keys whose version did not change, so an
	// unchanged secret leaves the app unchanged.
	Previous func(app string) *api.App
}

// ResolveFiles reads the files the valid apps of res take from the tree
// (from), in place: an app whose files cannot all be read becomes
// invalid with an error at the from field. fsys is the tree the result
// was loaded from. Apps are copied before they are changed, so cached
// results stay as the loader made them.
func ResolveFiles(fsys fs.FS, res *Result, opts ResolveOptions) {
	for i := range res.Apps {
		res.Apps[i] = ResolveApp(fsys, res.Apps[i], opts)
	}
}

// ResolveApp is ResolveFiles for one app's result.
func ResolveApp(fsys fs.FS, ar AppResult, opts ResolveOptions) AppResult {
	if !ar.Valid() || !HasRepoFiles(ar.App) && len(ar.App.Spec.Secrets) == 0 {
		return ar
	}
	if p := strings.Trim(path.Clean(opts.PathPrefix), "/"); p != "." {
		opts.PathPrefix = p
	} else {
		opts.PathPrefix = ""
	}
	app := api.Clone(ar.App)
	var errs []api.SourceError
	for wi := range app.Spec.Workloads {
		t := &app.Spec.Workloads[wi].Spec.Template
		total := 0
		for fi := range t.Files {
			f := &t.Files[fi]
			if f.FromAt == nil {
				total += len(f.Content)
				continue
			}
			at := opts.at(f.FromAt)
			content, err := readRepoFile(fsys, f.From, configFile)
			if err != nil {
				at.Message = fmt.Sprintf("file %s: from %q: %v", f.Path, f.From, err)
				errs = append(errs, at)
				continue
			}
			f.Content, f.FromAt = content, nil
			total += len(content)
		}
		if total > api.MaxFilesBytes && len(errs) == 0 {
			errs = append(errs, api.SourceError{File: ar.App.Metadata.Source.Path, Line: ar.App.Metadata.Source.Line,
				Path:    "apps." + ar.Name + ".pods." + app.Spec.Workloads[wi].Name + ".files",
				Message: fmt.Sprintf("the files of pod group %s hold %d bytes, more than the limit of %d; keep large data in the image or a volume", app.Spec.Workloads[wi].Name, total, api.MaxFilesBytes)})
		}
	}
	errs = append(errs, resolveSecrets(fsys, app, opts)...)
	if len(errs) > 0 {
		return AppResult{Name: ar.Name, Files: ar.Files, Errors: errs}
	}
	ar.App = app
	return ar
}

// at is a position recorded in an app, as users see it.
func (o ResolveOptions) at(p *api.SourceError) api.SourceError {
	at := *p
	if o.PathPrefix != "" && at.File != "" && !strings.HasPrefix(at.File, o.PathPrefix+"/") {
		at.File = o.PathPrefix + "/" + at.File
	}
	return at
}

// HasRepoFiles reports whether app has files still to be read from the
// repository.
func HasRepoFiles(app *api.App) bool {
	for _, w := range app.Spec.Workloads {
		for _, f := range w.Spec.Template.Files {
			if f.FromAt != nil {
				return true
			}
		}
	}
	for _, s := range app.Spec.Secrets {
		if s.FromAt != nil {
			return true
		}
	}
	return false
}

// repoFileUse is what a file read from the repository is for: its size
// limit, and what its errors tell the user to do.
type repoFileUse struct {
	limit int
	// missing, tooLarge and notText follow the error's words.
	missing, tooLarge, notText string
}

var (
	configFile = repoFileUse{limit: api.MaxFileBytes,
		tooLarge: "a config file; keep large data in the image or a volume",
		notText:  "config files are text; put binary data in the image"}
	secretFile = repoFileUse{limit: secrets.MaxFileBytes,
		missing:  ": make it with capstan secret encrypt (or edit) and commit it, or correct from (relative to the descriptor root)",
		tooLarge: "a secret file: split the secret into several files, each declared under secrets",
		notText:  "a secret file is the YAML capstan secret encrypt writes; encrypt the plain values with it"}
)

// readRepoFile reads a file for use: a regular file of the tree (a link
// only when it stays in the tree), at most use.limit bytes, text.
func readRepoFile(fsys fs.FS, p string, use repoFileUse) (string, error) {
	if why := cleanRepoPath(p); why != "" {
		return "", fmt.Errorf("%s", why)
	}
	target := p
	if rl, ok := fsys.(fs.ReadLinkFS); ok {
		if err := noLinkedDirs(rl, path.Dir(p)); errors.Is(err, fs.ErrNotExist) {
			return "", notFound(err, use)
		} else if err != nil {
			return "", fmt.Errorf("refused: %w", err)
		}
		info, err := rl.Lstat(p)
		if err != nil {
			return "", notFound(err, use)
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			t, err := resolveLink(fsys, p)
			if err != nil {
				return "", fmt.Errorf("symbolic link refused: %w", err)
			}
			if t == "" {
				return "", fmt.Errorf("is a link to a directory; name a file")
			}
			target = t
		}
	}
	f, err := fsys.Open(target)
	if err != nil {
		return "", notFound(err, use)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", err
	}
	if info.IsDir() {
		return "", fmt.Errorf("is a directory; name a file")
	}
	if !info.Mode().IsRegular() {
		return "", fmt.Errorf("is not a regular file")
	}
	if info.Size() > int64(use.limit) {
		return "", fmt.Errorf("is %d bytes, more than the limit of %d %s", info.Size(), use.limit, use.tooLarge)
	}
	b, err := io.ReadAll(io.LimitReader(f, int64(use.limit)+1))
	if err != nil {
		return "", err
	}
	if len(b) > use.limit {
		return "", fmt.Errorf("is more than the limit of %d bytes %s", use.limit, use.tooLarge)
	}
	if isLFSPointer(b) {
		return "", errors.New(lfsPointerError)
	}
	if !api.IsText(b) {
		return "", fmt.Errorf("is not text (UTF-8 without NUL bytes): %s", use.notText)
	}
	return string(b), nil
}

func notFound(err error, use repoFileUse) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no such file in the repository at this commit%s", use.missing)
	}
	return err
}

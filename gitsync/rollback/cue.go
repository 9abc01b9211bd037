package rollback

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"testing/fstest"

	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/format"
	"cuelang.org/go/cue/parser"
	"cuelang.org/go/cue/token"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/gitsync"
	"github.com/capstanhq/capstan/schema"
)

// errShape marks a file whose apps are not written as plain fields
// (apps: NAME: ... or apps: {NAME: ...}), so one app's part cannot be
// told apart safely.
var errShape = errors.New("the file is not written as plain 'apps: NAME: ...' fields")

// rewriteApp returns head's content (a CUE file) with app's declarations
// replaced by those in to (either may be nil: the file does not exist
// there). The other declarations are kept as they are; the result is
// formatted by CUE.
func rewriteApp(name string, head, to []byte, app string) ([]byte, error) {
	var toFields []*ast.Field
	if to != nil {
		tf, err := parser.ParseFile(name, to, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("parse %s at the target: %w", name, err)
		}
		_, _, toFields, err = splitApp(tf, app)
		if err != nil {
			return nil, fmt.Errorf("%s at the target: %w", name, err)
		}
	}
	var hf *ast.File
	if head != nil {
		var err error
		if hf, err = parser.ParseFile(name, head, parser.ParseComments); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
	} else {
		hf = &ast.File{Filename: name}
	}
	decls, removed, _, err := splitApp(hf, app)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var fresh []ast.Decl
	for _, f := range toFields {
		fresh = append(fresh, &ast.Field{Label: ast.NewIdent("apps"), Value: ast.NewStruct(f)})
	}
	var out []ast.Decl
	for i, d := range decls {
		if !removed[i] {
			out = append(out, d)
			continue
		}
		// The app's declaration is replaced where it stood first; the
		// comments it carried (a file header, say) stay.
		comments := ast.Comments(d)
		switch {
		case fresh != nil && len(comments) > 0:
			ast.SetComments(fresh[0], append(comments, ast.Comments(fresh[0])...))
		case fresh == nil:
			for _, c := range comments {
				out = append(out, c)
			}
		}
		out = append(out, fresh...)
		fresh = nil
	}
	hf.Decls = append(out, fresh...)
	b, err := format.Node(hf)
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", name, err)
	}
	return b, nil
}

// splitApp takes app's fields out of a file's apps structs. It returns the
// file's declarations without them (removed marks those that held only
// app's fields, kept for their position and comments) and the fields taken
// out.
func splitApp(f *ast.File, app string) (decls []ast.Decl, removed []bool, taken []*ast.Field, err error) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.Package, *ast.ImportDecl, *ast.Attribute, *ast.CommentGroup:
			decls, removed = append(decls, d), append(removed, false)
			continue
		case *ast.Field:
			if name, _, err := ast.LabelName(d.Label); err == nil && name == "apps" && d.Constraint == token.ILLEGAL {
				st, ok := d.Value.(*ast.StructLit)
				if !ok {
					return nil, nil, nil, errShape
				}
				var keep []ast.Decl
				for _, e := range st.Elts {
					ef, ok := e.(*ast.Field)
					if !ok {
						if _, isComment := e.(*ast.CommentGroup); isComment {
							keep = append(keep, e)
							continue
						}
						return nil, nil, nil, errShape
					}
					n, _, err := ast.LabelName(ef.Label)
					if err != nil {
						return nil, nil, nil, errShape
					}
					if n == app {
						taken = append(taken, ef)
						continue
					}
					keep = append(keep, ef)
				}
				if len(keep) > 0 && len(keep) < len(st.Elts) {
					st.Elts = keep
				}
				decls, removed = append(decls, d), append(removed, len(keep) == 0)
				continue
			}
			return nil, nil, nil, fmt.Errorf("%w: top-level field %s", errShape, fieldName(d))
		default:
			return nil, nil, nil, fmt.Errorf("%w: a top-level %T", errShape, d)
		}
	}
	return decls, removed, taken, nil
}

func fieldName(f *ast.Field) string {
	n, _, err := ast.LabelName(f.Label)
	if err != nil {
		return "with a computed name"
	}
	return n
}

// rewriteShared rewrites, in each of shared (files that declare app and
// other apps at head or at to), only app's part as at to. It then checks
// on the whole descriptor tree that app becomes exactly what it was at to
// and no other app changes; any doubt is an error.
func rewriteShared(ctx context.Context, load Loader, repoDir, descPath, app, to, head string, shared, whole []string, atHead, atTo appDecls) (map[string][]byte, error) {
	headFS, err := gitsync.TreeAt(repoDir, head)
	if err != nil {
		return nil, err
	}
	toFS, err := gitsync.TreeAt(repoDir, to)
	if err != nil {
		return nil, err
	}
	read := func(fsys fs.FS, p string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return b, err
	}
	out := map[string][]byte{}
	for _, f := range shared {
		if path.Ext(f) != ".cue" {
			return nil, fmt.Errorf("%s is not a CUE file: only CUE files are rewritten", f)
		}
		cur, err := read(headFS, f)
		if err != nil {
			return nil, err
		}
		old, err := read(toFS, f)
		if err != nil {
			return nil, err
		}
		if out[f], err = rewriteApp(f, cur, old, app); err != nil {
			return nil, err
		}
	}
	// The tree after the commit: head, with the whole files as at to and
	// the shared ones rewritten.
	tree := fstest.MapFS{}
	prefix := ""
	if descPath != "" && descPath != "." {
		prefix = descPath + "/"
	}
	root := "."
	if prefix != "" {
		root = descPath
	}
	err = fs.WalkDir(headFS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return err
		}
		b, err := fs.ReadFile(headFS, p)
		tree[strings.TrimPrefix(p, prefix)] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the tree at %s: %w", api.ShortCommit(head), err)
	}
	for _, f := range whole {
		b, err := read(toFS, f)
		if err != nil {
			return nil, err
		}
		if b == nil {
			delete(tree, strings.TrimPrefix(f, prefix))
		} else {
			tree[strings.TrimPrefix(f, prefix)] = &fstest.MapFile{Data: b}
		}
	}
	for f, b := range out {
		tree[strings.TrimPrefix(f, prefix)] = &fstest.MapFile{Data: b}
	}
	after, err := loadDecls(ctx, load, tree, descPath)
	if err != nil {
		return nil, err
	}
	for name, spec := range atHead.specs {
		if name == app {
			continue
		}
		if got, ok := after.specs[name]; !ok || !bytes.Equal(got, spec) {
			return nil, fmt.Errorf("the rewrite would change app %s too", name)
		}
	}
	for name := range after.specs {
		if _, ok := atHead.specs[name]; !ok && name != app {
			return nil, fmt.Errorf("the rewrite would add app %s", name)
		}
	}
	if got, want := after.specs[app], atTo.specs[app]; got == nil || !bytes.Equal(got, want) {
		return nil, fmt.Errorf("the rewritten files do not give app %s as it was at %s", app, api.ShortCommit(to))
	}
	return out, nil
}

// loadDecls loads a tree of descriptors (rooted at descPath).
func loadDecls(ctx context.Context, load Loader, fsys fs.FS, descPath string) (appDecls, error) {
	res, err := load.orDefault()(ctx, fsys, schema.LoadOptions{PathPrefix: descPath})
	if err != nil {
		return appDecls{}, err
	}
	return declsOf(res, descPath), nil
}

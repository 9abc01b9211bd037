package registry_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/capstanhq/capstan/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type tarFile struct {
	hdr     *tar.Header
	content string
}

// layerFiles reads the single layer of img into name -> entry, and checks
// the order of entries is sorted.
func layerFiles(t *testing.T, img v1.Image) map[string]tarFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]tarFile{}
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[hdr.Name] = tarFile{hdr, string(b)}
		names = append(names, hdr.Name)
	}
	if !slices.IsSorted(names) {
		t.Errorf("layer entries not sorted: %q", names)
	}
	return files
}

// tree makes a small directory with a binary, a data file, a subdirectory
// and an internal link.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "hello"), []byte("\x7fELF fake"), 0o755))
	must(t, os.Mkdir(filepath.Join(dir, "etc"), 0o750))
	must(t, os.WriteFile(filepath.Join(dir, "etc", "conf"), []byte("a=1\n"), 0o640))
	must(t, os.Symlink("../hello", filepath.Join(dir, "etc", "link")))
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPackDirIsReproducible(t *testing.T) {
	cfg := registry.ImageConfig{Entrypoint: []string{"/hello"}, Env: []string{"A=1"}, Labels: map[string]string{"b": "2", "a": "1"}}
	dir := tree(t)
	img1, err := registry.PackDir(dir, cfg)
	must(t, err)

	// Same content, different times: a copy made later, with touched mtimes.
	dir2 := tree(t)
	later := time.Now().Add(time.Hour)
	must(t, os.Chtimes(filepath.Join(dir2, "hello"), later, later))
	must(t, os.Chtimes(filepath.Join(dir2, "etc"), later, later))
	img2, err := registry.PackDir(dir2, cfg)
	must(t, err)

	if d1, d2 := digest(t, img1), digest(t, img2); d1 != d2 {
		t.Fatalf("same input packed to %s and %s", d1, d2)
	}
	img3, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/hello"}, Env: []string{"A=2"}})
	must(t, err)
	if digest(t, img1) == digest(t, img3) {
		t.Fatal("different config packed to the same digest")
	}
}

func TestPackDirConfig(t *testing.T) {
	img, err := registry.PackDir(tree(t), registry.ImageConfig{
		Entrypoint:   []string{"/hello", "-v"},
		Cmd:          []string{"serve"},
		Env:          []string{"PORT=8080", "EMPTY="},
		ExposedPorts: []string{"8080", "53/UDP"},
		Labels:       map[string]string{"org.opencontainers.image.title": "hello"},
		User:         "65532:65532",
	})
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
	c := cf.Config
	if !slices.Equal(c.Entrypoint, []string{"/hello", "-v"}) || !slices.Equal(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if !slices.Equal(c.Env, []string{"PORT=8080", "EMPTY="}) {
		t.Errorf("env %q", c.Env)
	}
	if c.WorkingDir != "/" {
		t.Errorf("working dir %q, want default /", c.WorkingDir)
	}
	if c.User != "65532:65532" {
		t.Errorf("user %q", c.User)
	}
	if len(c.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v, want 8080/tcp and 53/udp", c.ExposedPorts)
	}
	for _, p := range []string{"8080/tcp", "53/udp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("exposed ports %v lack %s", c.ExposedPorts, p)
		}
	}
	if c.Labels["org.opencontainers.image.title"] != "hello" {
		t.Errorf("labels %v", c.Labels)
	}
	if !cf.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("created %v, want the Unix epoch", cf.Created)
	}
	if len(cf.RootFS.DiffIDs) != 1 {
		t.Errorf("rootfs diff ids %v, want one", cf.RootFS.DiffIDs)
	}
	mt, err := img.MediaType()
	must(t, err)
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s, want OCI", mt)
	}
	m, err := img.Manifest()
	must(t, err)
	if m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("config %s, layer %s: want OCI media types", m.Config.MediaType, m.Layers[0].MediaType)
	}
}

func TestPackDirLayerContents(t *testing.T) {
	dir := tree(t)
	// Setuid survives packing (umask permitting on this file system).
	must(t, os.Chmod(filepath.Join(dir, "hello"), os.ModeSetuid|0o755))
	img, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/hello"}})
	must(t, err)
	files := layerFiles(t, img)
	want := map[string]struct {
		typ  byte
		mode int64
	}{
		"etc/":     {tar.TypeDir, 0o750},
		"etc/conf": {tar.TypeReg, 0o640},
		"etc/link": {tar.TypeSymlink, 0o777},
		"hello":    {tar.TypeReg, 0o4755},
	}
	if len(files) != len(want) {
		t.Errorf("layer has %d entries, want %d: %v", len(files), len(want), files)
	}
	for n, w := range want {
		f, ok := files[n]
		if !ok {
			t.Errorf("layer lacks %s", n)
			continue
		}
		h := f.hdr
		if h.Typeflag != w.typ || h.Mode != w.mode {
			t.Errorf("%s: type %c mode %o, want %c %o", n, h.Typeflag, h.Mode, w.typ, w.mode)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0", n, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v, want the epoch", n, h.ModTime)
		}
	}
	if files["etc/link"].hdr.Linkname != "../hello" {
		t.Errorf("link target %q", files["etc/link"].hdr.Linkname)
	}
	if files["etc/conf"].content != "a=1\n" {
		t.Errorf("etc/conf content %q", files["etc/conf"].content)
	}
}

func TestPackDirRefusesUnsafeEntries(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir, outside string)
	}{
		{"link to parent", func(t *testing.T, dir, _ string) {
			must(t, os.Symlink("..", filepath.Join(dir, "up")))
		}},
		{"link out of a subdirectory", func(t *testing.T, dir, _ string) {
			must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
			must(t, os.Symlink("../../etc/passwd", filepath.Join(dir, "sub", "pw")))
		}},
		{"absolute link", func(t *testing.T, dir, outside string) {
			must(t, os.Symlink(outside, filepath.Join(dir, "abs")))
		}},
		{"chain of links", func(t *testing.T, dir, _ string) {
			// Each link looks inside on its own: sub/p -> "." and sub/esc ->
			// "p/../..", which is "." read lexically. Resolved, p is sub, so
			// esc is the parent of the directory.
			must(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
			must(t, os.Symlink(".", filepath.Join(dir, "sub", "p")))
			must(t, os.Symlink("p/../..", filepath.Join(dir, "sub", "esc")))
		}},
		{"named pipe", func(t *testing.T, dir, _ string) {
			must(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, "app"), []byte("x"), 0o755))
			tc.setup(t, dir, outside)
			_, err := registry.PackDir(dir, registry.ImageConfig{Entrypoint: []string{"/app"}})
			if !errors.Is(err, registry.ErrUnsafePath) {
				t.Fatalf("PackDir = %v, want ErrUnsafePath", err)
			}
		})
	}
}

func TestPackDirRefusesBadInput(t *testing.T) {
	dir := tree(t)
	file := filepath.Join(dir, "hello")
	tests := []struct {
		name    string
		dir     string
		cfg     registry.ImageConfig
		wantErr error
	}{
		{"no entrypoint", dir, registry.ImageConfig{}, registry.ErrInvalidImageConfig},
		{"env without =", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, Env: []string{"PORT"}}, registry.ErrInvalidImageConfig},
		{"env with empty key", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, Env: []string{"=1"}}, registry.ErrInvalidImageConfig},
		{"port zero", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, ExposedPorts: []string{"0"}}, registry.ErrInvalidImageConfig},
		{"port too big", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, ExposedPorts: []string{"65536"}}, registry.ErrInvalidImageConfig},
		{"port bad proto", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, ExposedPorts: []string{"80/http"}}, registry.ErrInvalidImageConfig},
		{"relative workdir", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, WorkingDir: "app"}, registry.ErrInvalidImageConfig},
		{"empty label key", dir, registry.ImageConfig{Entrypoint: []string{"/a"}, Labels: map[string]string{"": "x"}}, registry.ErrInvalidImageConfig},
		{"not a directory", file, registry.ImageConfig{Entrypoint: []string{"/a"}}, nil},
		{"missing directory", filepath.Join(dir, "nope"), registry.ImageConfig{Entrypoint: []string{"/a"}}, os.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := registry.PackDir(tc.dir, tc.cfg)
			if err == nil {
				t.Fatal("PackDir succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("PackDir = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestTarballRoundTrip(t *testing.T) {
	img, err := registry.PackDir(tree(t), registry.ImageConfig{Entrypoint: []string{"/hello"}})
	must(t, err)
	file := filepath.Join(t.TempDir(), "hello.tar")
	must(t, registry.WriteTarball(img, "127.0.0.1:5000/examples/hello:v1", file))
	back, err := registry.ReadTarball(file)
	must(t, err)
	if d1, d2 := digest(t, img), digest(t, back); d1 != d2 {
		t.Fatalf("tarball round trip changed digest %s -> %s", d1, d2)
	}
	if _, err := registry.ReadTarball(filepath.Join(t.TempDir(), "missing.tar")); err == nil {
		t.Fatal("ReadTarball of a missing file succeeded")
	}
}

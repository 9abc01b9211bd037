package demo

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/capstanhq/capstan/internal/testenv"
	"github.com/capstanhq/capstan/registry"
)

// TestMakeUpImagesFollowSources runs the Makefile's up-images (what `make
// up` packs) for one example image: a second make leaves the tarball alone,
// and a tarball older than its program's sources (what an edit of the
// example looks like to make) is built and packed again, with the same
// digest since packing is reproducible. Before, a tarball that existed was
// never rebuilt, so an edited example ran as its old self.
func TestMakeUpImagesFollowSources(t *testing.T) {
	testenv.RequireBinaries(t, "make", "go")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "images")
	tar := filepath.Join(dir, "worker-v1.tar")
	run := func() {
		t.Helper()
		cmd := exec.Command("make", "-C", root, "up-images", "UP_IMAGES=worker:v1",
			"UP_IMAGE_DIR="+dir, "BIN="+filepath.Join(tmp, "capstan"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make up-images: %v\n%s", err, out)
		}
	}
	stat := func() (time.Time, string) {
		t.Helper()
		fi, err := os.Stat(tar)
		if err != nil {
			t.Fatalf("make up-images wrote no tarball: %v", err)
		}
		img, err := registry.ReadTarball(tar)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime(), d.String()
	}

	run()
	made, digest := stat()

	run()
	if again, d := stat(); !again.Equal(made) || d != digest {
		t.Errorf("unchanged sources: tarball rewritten (mtime %v -> %v, digest %s -> %s)", made, again, digest, d)
	}

	old := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(tar, old, old); err != nil {
		t.Fatal(err)
	}
	run()
	rebuilt, d := stat()
	if !rebuilt.After(old) {
		t.Errorf("sources newer than the tarball: not rebuilt (mtime still %v)", rebuilt)
	}
	if d != digest {
		t.Errorf("rebuilt from the same sources: digest %s, want %s (packing is reproducible)", d, digest)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 1 {
		t.Errorf("image directory holds %d entries (%v), want only worker-v1.tar", len(ents), err)
	}
}

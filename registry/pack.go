package registry

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the fixed time stamped on every file, the config and its history,
// so that packing the same directory twice gives the same digest.
var epoch = time.Unix(0, 0).UTC()

// ImageConfig is what PackDir writes into the image configuration.
type ImageConfig struct {
	// Entrypoint is the program and its first arguments. Required.
	Entrypoint []string
	// Cmd holds default arguments appended to Entrypoint.
	Cmd []string
	// Env holds "KEY=VALUE" pairs; KEY is non-empty and has no '='.
	Env []string
	// WorkingDir is an absolute path inside the image. Default "/".
	WorkingDir string
	// ExposedPorts holds "PORT" or "PORT/PROTO" (tcp, udp or sctp; default
	// tcp), PORT in 1-65535.
	ExposedPorts []string
	// Labels are image labels; keys are non-empty.
	Labels map[string]string
	// User is the user (and optional group) the process runs as, for
	// example "65532:65532". Default: root.
	User string
	// Architecture is the CPU architecture of the files. Default "amd64".
	// The operating system is always linux.
	Architecture string
}

// normalized validates c and returns a copy with defaults applied and ports
// in canonical "PORT/proto" form.
func (c ImageConfig) normalized() (ImageConfig, error) {
	bad := func(format string, args ...any) (ImageConfig, error) {
		return ImageConfig{}, fmt.Errorf("%w: %s", ErrInvalidImageConfig, fmt.Sprintf(format, args...))
	}
	if len(c.Entrypoint) == 0 || c.Entrypoint[0] == "" {
		return bad("entrypoint is empty: give the program to run, for example --entrypoint /hello")
	}
	for _, s := range slices.Concat(c.Entrypoint, c.Cmd, c.Env, []string{c.WorkingDir, c.User}) {
		if strings.ContainsRune(s, 0) {
			return bad("%q contains a NUL byte", s)
		}
	}
	for _, kv := range c.Env {
		if _, err := ParseKeyValue(kv); err != nil {
			return bad("environment variable: %v", err)
		}
	}
	if c.WorkingDir == "" {
		c.WorkingDir = "/"
	}
	if !path.IsAbs(c.WorkingDir) {
		return bad("working directory %q is not absolute: start it with /", c.WorkingDir)
	}
	ports := make([]string, 0, len(c.ExposedPorts))
	for _, p := range c.ExposedPorts {
		np, err := NormalizePort(p)
		if err != nil {
			return ImageConfig{}, fmt.Errorf("%w: %w", ErrInvalidImageConfig, err)
		}
		ports = append(ports, np)
	}
	c.ExposedPorts = ports
	for k, v := range c.Labels {
		if k == "" || strings.ContainsRune(k, 0) || strings.ContainsRune(v, 0) {
			return bad("label %q=%q: keys must be non-empty and neither may contain NUL", k, v)
		}
	}
	if c.Architecture == "" {
		c.Architecture = "amd64"
	}
	return c, nil
}

// NormalizePort parses "PORT" or "PORT/PROTO" and returns "PORT/proto" with
// proto one of tcp (the default), udp or sctp.
func NormalizePort(s string) (string, error) {
	num, proto, hasProto := strings.Cut(s, "/")
	if !hasProto {
		proto = "tcp"
	}
	proto = strings.ToLower(proto)
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != num {
		return "", fmt.Errorf("port %q: want a number from 1 to 65535, optionally followed by /tcp, /udp or /sctp", s)
	}
	switch proto {
	case "tcp", "udp", "sctp":
	default:
		return "", fmt.Errorf("port %q: protocol %q: want tcp, udp or sctp", s, proto)
	}
	return num + "/" + proto, nil
}

// KeyValue is one parsed "KEY=VALUE" pair.
type KeyValue struct{ Key, Value string }

// ParseKeyValue splits "KEY=VALUE" at the first '='. KEY must be non-empty
// and free of whitespace and NUL; VALUE may be empty.
func ParseKeyValue(s string) (KeyValue, error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return KeyValue{}, fmt.Errorf("%q: want KEY=VALUE", s)
	}
	if k == "" || strings.ContainsFunc(k, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return KeyValue{}, fmt.Errorf("%q: the key must be non-empty, without spaces or control characters", s)
	}
	if strings.ContainsRune(v, 0) {
		return KeyValue{}, fmt.Errorf("%q: the value contains a NUL byte", s)
	}
	return KeyValue{Key: k, Value: v}, nil
}

// PackDir builds a single-layer linux OCI image holding the files under dir
// (as the image's root) with the configuration cfg.
//
// The result is reproducible: entries are sorted, owned by 0:0 and stamped
// with the Unix epoch, so the same directory and config give the same
// digest. File modes are kept. Regular files, directories and symbolic links
// are packed; a symbolic link whose target is absolute or leaves dir, and any
// other kind of file (device, socket, pipe), is an error wrapping
// ErrUnsafePath. The layer is built in memory.
func PackDir(dir string, cfg ImageConfig) (v1.Image, error) {
	cfg, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	layerTar, err := tarDir(dir)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("pack %s: make layer: %w", dir, err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "capstan image pack"},
	})
	if err != nil {
		return nil, fmt.Errorf("pack %s: add layer: %w", dir, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pack %s: read config: %w", dir, err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = cfg.Architecture
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: cfg.Entrypoint,
		Cmd:        cfg.Cmd,
		Env:        cfg.Env,
		WorkingDir: cfg.WorkingDir,
		User:       cfg.User,
		Labels:     maps.Clone(cfg.Labels),
	}
	if len(cfg.ExposedPorts) > 0 {
		cf.Config.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			cf.Config.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("pack %s: write config: %w", dir, err)
	}
	return img, nil
}

// tarDir writes the tree under dir into an uncompressed tar, in lexical
// order, with normalized ownership and times.
func tarDir(dir string) ([]byte, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w: give an existing directory", dir, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("pack %s: not a directory: give the directory that becomes the image's root", dir)
	}
	// Links are checked against the real root, so a root reached through a
	// link of its own still works.
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// WalkDir visits entries in lexical order and does not follow links.
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return addEntry(tw, realRoot, p, filepath.ToSlash(rel), d)
	})
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack %s: %w", dir, err)
	}
	return buf.Bytes(), nil
}

// addEntry writes one file system entry at name (slash-separated, relative
// to the image root).
func addEntry(tw *tar.Writer, realRoot, p, name string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	mode := info.Mode()
	hdr := &tar.Header{
		Name:    name,
		Mode:    tarMode(mode),
		ModTime: epoch,
		Format:  tar.FormatPAX,
	}
	switch {
	case mode.IsDir():
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case mode.IsRegular():
		hdr.Typeflag = tar.TypeReg
		hdr.Size = info.Size()
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := checkLinkTarget(name, target); err != nil {
			return err
		}
		// A chain of links can leave the directory even when each one looks
		// fine on its own; resolve it when it resolves.
		if real, err := filepath.EvalSymlinks(p); err == nil && !within(realRoot, real) {
			return fmt.Errorf("%w: symbolic link %s resolves to %s, outside the directory being packed", ErrUnsafePath, name, real)
		}
		hdr.Typeflag = tar.TypeSymlink
		hdr.Linkname = target
	default:
		return fmt.Errorf("%w: %s is a %s: only regular files, directories and symbolic links can be packed", ErrUnsafePath, name, mode.Type())
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	// CopyN so that a file growing while we pack cannot overrun its header.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w (did it change while packing?)", name, err)
	}
	return nil
}

// tarMode keeps permission bits and setuid, setgid and sticky.
func tarMode(m fs.FileMode) int64 {
	out := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

// checkLinkTarget refuses a link at name (relative to the image root) whose
// target is absolute or resolves outside the root. An absolute target would
// mean one file on the build machine and another in the image.
func checkLinkTarget(name, target string) error {
	if path.IsAbs(target) || filepath.IsAbs(target) {
		return fmt.Errorf("%w: symbolic link %s points to the absolute path %s: make it relative to stay inside the directory", ErrUnsafePath, name, target)
	}
	resolved := path.Join(path.Dir(name), filepath.ToSlash(target))
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("%w: symbolic link %s points to %s, outside the directory being packed: copy the file in instead", ErrUnsafePath, name, target)
	}
	return nil
}

// within reports whether p is root or below it.
func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

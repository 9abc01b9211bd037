package api

import (
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// Bounds on the files of a pod template. Their content travels in the
// Workload and in every Pod, whose encoded size is bounded (1 MiB), so
// the files of one pod group together stay well below it.
const (
	// MaxFileBytes bounds the content of one file.
	MaxFileBytes = 256 << 10
	// MaxFilesBytes bounds the content of all the files of a template.
	MaxFilesBytes = 512 << 10
	// MaxFiles bounds the number of files of a template.
	MaxFiles = 64
	// DefaultFileMode is a file's mode when none is given: read-only for
	// everyone, so that images running as any user can read it.
	DefaultFileMode = 0o444
)

// PodFile is a text file delivered read-only into every container of a
// pod. Its content is part of the template, so a change of it rolls the
// pods like any other change of the template.
type PodFile struct {
	// Path is the absolute path of the file inside the containers.
	Path string `json:"path"`
	// From is the repository path the content was read from (empty for
	// inline content); kept for plan and describe.
	From string `json:"from,omitempty"`
	// Content is the file's text.
	Content string `json:"content"`
	// Mode is the file's permission bits (default 0444).
	Mode int32 `json:"mode,omitempty"`
	// FromAt is where the descriptor names From, until the loader has read
	// the file (schema.ResolveFiles clears it): a template with FromAt set
	// is not resolved yet and is refused.
	FromAt *SourceError `json:"fromAt,omitempty"`
	// Secret, when set, gives the content from a key of a secret: the
	// file lives in memory on the node (Content is then empty).
	Secret *SecretKeyRef `json:"secret,omitempty"`
}

// reservedPaths are files every container gets from the pod itself.
var reservedPaths = map[string]bool{"/etc/hosts": true, "/etc/resolv.conf": true, "/etc/hostname": true}

// CleanFilePath reports why p cannot be a file's path inside a container,
// or "" when it can.
func CleanFilePath(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "must be an absolute path"
	case p == "/" || strings.HasSuffix(p, "/"):
		return "must name a file, not a directory"
	case path.Clean(p) != p:
		return fmt.Sprintf("is not a clean path (write %s)", path.Clean(p))
	case strings.ContainsAny(p, "\x00\n"):
		return "must not contain NUL or newline"
	case reservedPaths[p]:
		return "is written by Capstan for every container (hosts, resolv.conf, hostname)"
	case p == "/proc" || strings.HasPrefix(p, "/proc/") || p == "/sys" || strings.HasPrefix(p, "/sys/") || p == "/dev" || strings.HasPrefix(p, "/dev/"):
		return "must not be under /proc, /sys or /dev"
	}
	return ""
}

// IsText reports whether b can be a config file: UTF-8 without NUL bytes.
func IsText(b []byte) bool {
	return utf8.Valid(b) && !strings.ContainsRune(string(b), 0)
}

func validateFiles(errs *ErrorList, t *PodTemplate, path string) {
	if len(t.Files) > MaxFiles {
		errs.add(path+".files", "%d files, more than %d", len(t.Files), MaxFiles)
	}
	seen := map[string]bool{}
	total := 0
	for i, f := range t.Files {
		p := fmt.Sprintf("%s.files[%d]", path, i)
		if why := CleanFilePath(f.Path); why != "" {
			errs.add(p+".path", "%s %s", quote(f.Path), why)
		} else if seen[f.Path] {
			errs.add(p+".path", "%s is defined twice", quote(f.Path))
		}
		seen[f.Path] = true
		if f.Mode < 0 || f.Mode > 0o777 {
			errs.add(p+".mode", "%#o: want permission bits, 0 to 0777", f.Mode)
		}
		if f.FromAt != nil {
			errs.add(p+".from", "%s was not read from the repository", quote(f.From))
		}
		if len(f.Content) > MaxFileBytes {
			errs.add(p+".content", "%d bytes, more than the limit of %d a file", len(f.Content), MaxFileBytes)
		} else if !IsText([]byte(f.Content)) {
			errs.add(p+".content", "is not text (UTF-8 without NUL bytes): config files are text")
		}
		total += len(f.Content)
		if f.Secret != nil {
			validateSecretRef(errs, f.Secret, p+".secret")
			if f.Content != "" || f.From != "" {
				errs.add(p+".secret", "a secret file has no content or from of its own")
			}
		}
	}
	if total > MaxFilesBytes {
		errs.add(path+".files", "%d bytes of files, more than the limit of %d a pod group", total, MaxFilesBytes)
	}
	for i := range t.Containers {
		for j, m := range t.Containers[i].VolumeMounts {
			if seen[m.MountPath] {
				errs.add(fmt.Sprintf("%s.containers[%d].volumeMounts[%d].mountPath", path, i, j), "%s is also a file of the pod", quote(m.MountPath))
			}
		}
	}
}

package schema

import "bytes"

// maxLFSPointer is the size every Git LFS pointer file stays under (the
// pointer spec: https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md).
const maxLFSPointer = 1024

// lfsVersions begin a pointer file: the spec's version line, and the one
// of the pre-release spec that git-lfs still reads.
var lfsVersions = [][]byte{
	[]byte("version https://git-lfs.github.com/spec/v1\n"),
	[]byte("version https://hawser.github.com/spec/v1\n"),
}

// isLFSPointer reports whether data is a Git LFS pointer: what a file
// tracked by LFS is in git, its content being kept on an LFS server.
// Sync reads git objects and fetches no LFS content (as Flux; Argo CD
// does when a repository enables it), so such a file would reach a
// container as the pointer's three lines, or fail to parse as a
// descriptor with an error that says nothing of LFS.
func isLFSPointer(data []byte) bool {
	if len(data) >= maxLFSPointer || !bytes.Contains(data, []byte("\noid sha256:")) {
		return false
	}
	for _, v := range lfsVersions {
		if bytes.HasPrefix(data, v) {
			return true
		}
	}
	return false
}

// lfsPointerError says what an LFS pointer is and what to do about it.
const lfsPointerError = "is a Git LFS pointer, not the file's content (sync does not fetch LFS objects): commit the file itself to git ('git lfs untrack' its pattern, 'git add --renormalize' it, and commit)"

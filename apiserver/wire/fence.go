package wire

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// FenceHeader, on a write, ties it to one leadership of the control plane:
// its value is the leader's election key and that key's create revision,
// KEY@REV (see FormatFence). The server applies the write only while the
// key still has that revision, and answers 412 ReasonFenced otherwise. The
// leading server's controllers and git sync send it, so a leader that was
// paused past its lease cannot write over its successor.
const FenceHeader = "Capstan-Fence"

// FormatFence is FenceHeader's value for key and rev.
func FormatFence(key string, rev int64) string { return key + "@" + strconv.FormatInt(rev, 10) }

// ParseFence reads FenceHeader's value.
func ParseFence(v string) (key string, rev int64, err error) {
	i := strings.LastIndexByte(v, '@')
	if i <= 0 {
		return "", 0, errors.New("fence: want KEY@REVISION")
	}
	key = v[:i]
	rev, err = strconv.ParseInt(v[i+1:], 10, 64)
	if err != nil || rev < 1 {
		return "", 0, fmt.Errorf("fence: revision %q: want a positive integer", v[i+1:])
	}
	return key, rev, nil
}

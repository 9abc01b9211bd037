package sandbox

import (
	"encoding/hex"
	"fmt"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The protocol between an Evaluator and its child: one JSON request per
// line on the child's stdin; on its stdout, one line per step, then one
// line with the result.

// Environment of the child.
const (
	// ChildEnv marks the child process; Main serves requests when it is "1".
	ChildEnv  = "CAPSTAN_EVAL_CHILD"
	memoryEnv = "CAPSTAN_EVAL_MEMORY" // bytes of address space beyond start-up
	cpuEnv    = "CAPSTAN_EVAL_CPU_MS" // CPU milliseconds per step
)

// exitCPU is the child's exit status when it used its CPU time (the Go
// runtime reports running out of memory itself, on stderr).
const exitCPU = 3

// request carries the files that changed since the previous request
// (all of them when Full), and the paths removed.
type request struct {
	Full    bool              `json:"full,omitempty"`
	Files   []wireFile        `json:"files"`
	Removed []string          `json:"removed,omitempty"`
	Repo    string            `json:"repo,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Prefix  string            `json:"prefix,omitempty"`
	Refused map[string]string `json:"refused,omitempty"` // step key (hex) -> message
}

type wireFile struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
	// Data is left out when the child holds the same content under some
	// path (Sent); an empty file has Data nil and Sent false.
	Data []byte           `json:"data,omitempty"`
	Sent bool             `json:"sent,omitempty"`
	Err  *api.SourceError `json:"err,omitempty"`
}

type wireStep struct {
	File string `json:"file"`
	App  string `json:"app,omitempty"`
	Key  string `json:"key"`
}

// wireApp is one app evaluated by this request.
type wireApp struct {
	Name   string            `json:"name"`
	Files  []string          `json:"files,omitempty"`
	App    *api.App          `json:"app,omitempty"`
	Errors []api.SourceError `json:"errors,omitempty"`
}

// wireResult ends an answer: every app of the tree by name (those not
// sent in App lines were evaluated before, with the same inputs), the
// errors of the tree, the number of files.
type wireResult struct {
	Names  []string          `json:"names"`
	Errors []api.SourceError `json:"errors,omitempty"`
	Files  int               `json:"files"`
}

type reply struct {
	Step   *wireStep   `json:"step,omitempty"`
	App    *wireApp    `json:"app,omitempty"`  // an app evaluated
	Done   bool        `json:"done,omitempty"` // every step is done
	Result *wireResult `json:"result,omitempty"`
	Err    string      `json:"err,omitempty"`
}

func parseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("sandbox: bad step key %q", s)
	}
	copy(k[:], b)
	return k, nil
}

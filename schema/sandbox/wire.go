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

type request struct {
	Files   []wireFile        `json:"files"`
	Repo    string            `json:"repo,omitempty"`
	Commit  string            `json:"commit,omitempty"`
	Prefix  string            `json:"prefix,omitempty"`
	Refused map[string]string `json:"refused,omitempty"` // step key (hex) -> message
}

type wireFile struct {
	Path string `json:"path"`
	Hash string `json:"hash"`
	// Data is left out when the child was sent the same content before
	// (Sent); an empty file has Data nil and Sent false.
	Data []byte           `json:"data,omitempty"`
	Sent bool             `json:"sent,omitempty"`
	Err  *api.SourceError `json:"err,omitempty"`
}

type wireStep struct {
	File string `json:"file"`
	App  string `json:"app,omitempty"`
	Key  string `json:"key"`
}

type wireApp struct {
	Name string `json:"name"`
	// Cached: the child reused its previous evaluation of the same
	// inputs; the parent has the result from then.
	Cached bool `json:"cached,omitempty"`
	// Streamed: the child sent this result already, in an App line.
	Streamed bool              `json:"streamed,omitempty"`
	Files    []string          `json:"files,omitempty"`
	App      *api.App          `json:"app,omitempty"`
	Errors   []api.SourceError `json:"errors,omitempty"`
}

type wireResult struct {
	Apps   []wireApp         `json:"apps"`
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

package sandbox

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/capstanhq/capstan/internal/atomicfile"
	"os"
	"path/filepath"
)

// refusals are the inputs (step keys) that exceeded the bounds, with
// their messages, oldest first; kept in a file when one is given.
type refusals struct {
	file  string
	byKey map[[32]byte]string
	order [][32]byte
}

type refusalFile struct {
	Refused []refusalEntry `json:"refused"`
}

type refusalEntry struct {
	Key     string `json:"key"`
	Message string `json:"message"`
}

func loadRefusals(file string) (*refusals, error) {
	r := &refusals{file: file, byKey: map[[32]byte]string{}}
	if file == "" {
		return r, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox: read refused inputs: %w", err)
	}
	var rf refusalFile
	if err := json.Unmarshal(b, &rf); err != nil {
		return nil, fmt.Errorf("sandbox: %s is not a record of refused inputs (%w); remove it to evaluate them again", file, err)
	}
	for _, e := range rf.Refused {
		k, err := parseKey(e.Key)
		if err != nil {
			return nil, fmt.Errorf("sandbox: %s: %w; remove it to evaluate them again", file, err)
		}
		if _, dup := r.byKey[k]; !dup {
			r.order = append(r.order, k)
		}
		r.byKey[k] = e.Message
	}
	return r, nil
}

// add records a refused input and saves the record.
func (r *refusals) add(k [32]byte, msg string) error {
	if _, dup := r.byKey[k]; !dup {
		r.order = append(r.order, k)
	}
	r.byKey[k] = msg
	for len(r.order) > maxRecorded {
		delete(r.byKey, r.order[0])
		r.order = r.order[1:]
	}
	if r.file == "" {
		return nil
	}
	rf := refusalFile{Refused: make([]refusalEntry, 0, len(r.order))}
	for _, k := range r.order {
		rf.Refused = append(rf.Refused, refusalEntry{Key: hex.EncodeToString(k[:]), Message: r.byKey[k]})
	}
	b, err := json.MarshalIndent(rf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(r.file), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(r.file, b, 0o644)
}

func (r *refusals) wire() map[string]string {
	if len(r.byKey) == 0 {
		return nil
	}
	out := make(map[string]string, len(r.byKey))
	for k, msg := range r.byKey {
		out[hex.EncodeToString(k[:])] = msg
	}
	return out
}

package api

import (
	"strconv"
	"time"
)

// Revision records one sync attempt of one app: the commit and the result.
type Revision struct {
	TypeMeta
	Metadata ObjectMeta   `json:"metadata"`
	Spec     RevisionSpec `json:"spec"`
	Status   struct{}     `json:"status,omitzero"`
}

// RevisionSpec is the record of a sync attempt.
type RevisionSpec struct {
	Repo           string        `json:"repo"`
	Commit         string        `json:"commit"`
	Author         string        `json:"author,omitempty"`
	Message        string        `json:"message,omitempty"`
	CommittedAt    time.Time     `json:"committedAt,omitzero"`
	SyncedAt       time.Time     `json:"syncedAt,omitzero"`
	Result         string        `json:"result"`
	Errors         []SourceError `json:"errors,omitempty"`
	HistoryRewrite bool          `json:"historyRewrite,omitempty"`
	// Includes are the commits since the previously synced head that
	// Commit brought with it, newest first (at most 32): a push of
	// several commits is synced as its head alone.
	Includes []string `json:"includes,omitempty"`
}

// SourceError is a problem in a file of the repository.
type SourceError struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

func (e SourceError) String() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
		if e.Column > 0 {
			s += ":" + strconv.Itoa(e.Column)
		}
	}
	if e.Path != "" {
		if s != "" {
			s += ": "
		}
		s += e.Path
	}
	if s != "" {
		s += ": "
	}
	return s + e.Message
}

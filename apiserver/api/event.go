package api

import (
	"time"
)

// Event says what happened to an object and why.
type Event struct {
	TypeMeta
	Metadata ObjectMeta `json:"metadata"`
	Spec     EventSpec  `json:"spec"`
	Status   struct{}   `json:"status,omitzero"`
}

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// EventSpec is one deduplicated happening: the same reason on the same
// object counts up instead of adding events.
type EventSpec struct {
	Object    ObjectRef `json:"object"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Message   string    `json:"message"`
	Reporter  string    `json:"reporter,omitempty"`
	Count     int32     `json:"count"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
}

// ObjectRef points at an object.
type ObjectRef struct {
	Kind Kind   `json:"kind"`
	App  string `json:"app,omitempty"`
	Name string `json:"name"`
	UID  string `json:"uid,omitempty"`
}

// Meta implementations.

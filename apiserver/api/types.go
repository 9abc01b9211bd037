package api

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// ResourceList is an amount of each resource the scheduler counts.
type ResourceList struct {
	// CPU in cores: "250m" is a quarter of a core.
	CPU Quantity `json:"cpu,omitzero"`
	// Memory in bytes: "64Mi".
	Memory Quantity `json:"memory,omitzero"`
	// Pods is a count of pods (node capacity only).
	Pods int64 `json:"pods,omitempty"`
}

// Resources are what a container asks for (requests, used to schedule) and
// may not exceed (limits, enforced through cgroups).
type Resources struct {
	Requests ResourceList `json:"requests,omitzero"`
	Limits   ResourceList `json:"limits,omitzero"`
}

// IntOrString holds a number or a name: a port given as 8080 or "http", a
// rollout bound given as 1 or "25%".
type IntOrString struct {
	IntVal   int32
	StrVal   string
	IsString bool
}

// FromInt returns an IntOrString holding a number.
func FromInt(i int32) IntOrString { return IntOrString{IntVal: i} }

// FromString returns an IntOrString holding a name.
func FromString(s string) IntOrString { return IntOrString{StrVal: s, IsString: true} }

// IsZero reports whether v holds neither a number nor a name.
func (v IntOrString) IsZero() bool { return !v.IsString && v.IntVal == 0 }

func (v IntOrString) String() string {
	if v.IsString {
		return v.StrVal
	}
	return strconv.Itoa(int(v.IntVal))
}

// MarshalJSON writes a number or a string.
func (v IntOrString) MarshalJSON() ([]byte, error) {
	if v.IsString {
		return json.Marshal(v.StrVal)
	}
	return json.Marshal(v.IntVal)
}

// UnmarshalJSON reads a number or a string.
func (v *IntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		v.IsString, v.IntVal = true, 0
		return json.Unmarshal(b, &v.StrVal)
	}
	v.IsString, v.StrVal = false, ""
	return json.Unmarshal(b, &v.IntVal)
}

// ScaledValue resolves a count or a percentage of total; percentages round
// up when roundUp is set, else down (Kubernetes rounds surge up and
// unavailability down).
func (v IntOrString) ScaledValue(total int, roundUp bool) (int, error) {
	if !v.IsString {
		return int(v.IntVal), nil
	}
	s := v.StrVal
	if len(s) < 2 || s[len(s)-1] != '%' {
		return 0, fmt.Errorf("%q is neither a number nor a percentage", s)
	}
	p, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || p < 0 {
		return 0, fmt.Errorf("%q is not a percentage", s)
	}
	if roundUp {
		return (p*total + 99) / 100, nil
	}
	return p * total / 100, nil
}

// Meta returns the object's metadata, for every kind.
func (o *Node) Meta() *ObjectMeta      { return &o.Metadata }
func (o *Lease) Meta() *ObjectMeta     { return &o.Metadata }
func (o *App) Meta() *ObjectMeta       { return &o.Metadata }
func (o *Workload) Meta() *ObjectMeta  { return &o.Metadata }
func (o *Pod) Meta() *ObjectMeta       { return &o.Metadata }
func (o *Service) Meta() *ObjectMeta   { return &o.Metadata }
func (o *Endpoints) Meta() *ObjectMeta { return &o.Metadata }
func (o *Revision) Meta() *ObjectMeta  { return &o.Metadata }
func (o *Event) Meta() *ObjectMeta     { return &o.Metadata }

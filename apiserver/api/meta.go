package api

import "time"

// Kind names a kind of object, in its API path form: "pods", "nodes", ...
type Kind string

// The kinds the API serves.
const (
	KindNode      Kind = "nodes"
	KindLease     Kind = "leases"
	KindApp       Kind = "apps"
	KindWorkload  Kind = "workloads"
	KindPod       Kind = "pods"
	KindService   Kind = "services"
	KindEndpoints Kind = "endpoints"
	KindRevision  Kind = "revisions"
	KindEvent     Kind = "events"
	KindJob       Kind = "jobs"
	KindVolume    Kind = "volumes"
	KindSecret    Kind = "secrets"
)

// Kinds lists every kind in pipeline order.
var Kinds = []Kind{KindNode, KindLease, KindApp, KindWorkload, KindPod, KindService, KindEndpoints, KindRevision, KindEvent, KindJob, KindVolume, KindSecret}

// kindInfo is what the API needs to know about a kind.
type kindInfo struct {
	singular     string // "Pod": the value of the kind field in JSON
	clusterScope bool   // true when objects have no app
	aliases      []string
	new          func() Object
}

var kindInfos = map[Kind]kindInfo{
	KindNode:      {"Node", true, []string{"node", "no"}, func() Object { return &Node{} }},
	KindLease:     {"Lease", true, []string{"lease"}, func() Object { return &Lease{} }},
	KindApp:       {"App", false, []string{"app"}, func() Object { return &App{} }},
	KindWorkload:  {"Workload", false, []string{"workload", "wl"}, func() Object { return &Workload{} }},
	KindPod:       {"Pod", false, []string{"pod", "po"}, func() Object { return &Pod{} }},
	KindService:   {"Service", false, []string{"service", "svc"}, func() Object { return &Service{} }},
	KindEndpoints: {"Endpoints", false, []string{"endpoint", "ep"}, func() Object { return &Endpoints{} }},
	KindRevision:  {"Revision", false, []string{"revision", "rev"}, func() Object { return &Revision{} }},
	KindEvent:     {"Event", false, []string{"event", "ev"}, func() Object { return &Event{} }},
	KindJob:       {"Job", false, []string{"job"}, func() Object { return &Job{} }},
	KindVolume:    {"Volume", false, []string{"volume", "vol", "pv"}, func() Object { return &PersistentVolume{} }},
	KindSecret:    {"Secret", false, []string{"secret"}, func() Object { return &Secret{} }},
}

// Valid reports whether k is a kind the API serves.
func (k Kind) Valid() bool { _, ok := kindInfos[k]; return ok }

// ClusterScoped reports whether objects of kind k live outside any app.
func (k Kind) ClusterScoped() bool { return kindInfos[k].clusterScope }

// Singular is the kind's name as written in an object's "kind" field.
func (k Kind) Singular() string { return kindInfos[k].singular }

// New returns an empty object of kind k with its kind field set, or nil for
// an unknown kind.
func (k Kind) New() Object {
	info, ok := kindInfos[k]
	if !ok {
		return nil
	}
	o := info.new()
	o.setKind(info.singular)
	return o
}

// ParseKind accepts a kind as typed by a user: plural ("pods"), singular
// ("pod", "Pod") or a short alias ("po", "svc").
func ParseKind(s string) (Kind, bool) {
	for k, info := range kindInfos {
		if s == string(k) || s == info.singular || equalFold(s, info.singular) {
			return k, true
		}
		for _, a := range info.aliases {
			if s == a {
				return k, true
			}
		}
	}
	return "", false
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i]|0x20, b[i]|0x20
		if ca != cb {
			return false
		}
	}
	return true
}

// KindOf maps an object's singular kind field ("Pod") to its Kind.
func KindOf(singular string) (Kind, bool) {
	for k, info := range kindInfos {
		if info.singular == singular {
			return k, true
		}
	}
	return "", false
}

// ObjectMeta is the metadata every object carries.
type ObjectMeta struct {
	// Name is unique within the kind and app; a DNS-1123 label (nodes may
	// use a DNS-1123 subdomain).
	Name string `json:"name"`
	// App is the namespace the object lives in; empty for cluster-scoped
	// kinds (Node, Lease).
	App string `json:"app,omitempty"`
	// UID is assigned by the server on create and never changes.
	UID string `json:"uid,omitempty"`
	// ResourceVersion is the store revision of the object's last write. An
	// update that carries it is applied only if it still matches.
	ResourceVersion int64 `json:"resourceVersion,omitempty"`
	// Generation counts changes to the spec; status writes leave it alone.
	Generation int64 `json:"generation,omitempty"`
	// CreatedAt is set by the server on create.
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// DeletionRequestedAt is set when a graceful delete has begun (pods:
	// the agent stops the containers, then removes the object; volumes:
	// the agent removes the data, then the object).
	DeletionRequestedAt *time.Time `json:"deletionRequestedAt,omitempty"`
	// Labels select objects (services select pods by label).
	Labels map[string]string `json:"labels,omitempty"`
	// Annotations carry free-form data for tools.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Owner, when set, is the object this one was made from; when the owner
	// is gone, the garbage collector deletes this object.
	Owner *OwnerRef `json:"owner,omitempty"`
	// Source is the provenance of objects that came from git.
	Source *Source `json:"source,omitempty"`
}

// OwnerRef names the object that owns another.
type OwnerRef struct {
	Kind Kind   `json:"kind"`
	Name string `json:"name"`
	UID  string `json:"uid"`
}

// Source is where a git-owned object came from.
type Source struct {
	Repo   string `json:"repo"`
	Commit string `json:"commit"`
	Path   string `json:"path,omitempty"`
	Line   int    `json:"line,omitempty"`
	// Branch is the branch sync tracks ("" for a tag), and Root the
	// repository's descriptor directory ("" for its root), set on apps by
	// sync: where `capstan rollback` commits and what it reads.
	Branch string `json:"branch,omitempty"`
	Root   string `json:"root,omitempty"`
}

// ConditionStatus is True, False or Unknown.
type ConditionStatus string

// Condition statuses.
const (
	ConditionTrue    ConditionStatus = "True"
	ConditionFalse   ConditionStatus = "False"
	ConditionUnknown ConditionStatus = "Unknown"
)

// Condition is one observed aspect of an object's state.
type Condition struct {
	Type               string          `json:"type"`
	Status             ConditionStatus `json:"status"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
	LastTransitionTime time.Time       `json:"lastTransitionTime,omitzero"`
}

// FindCondition returns the condition of the given type, or nil.
func FindCondition(conds []Condition, typ string) *Condition {
	for i := range conds {
		if conds[i].Type == typ {
			return &conds[i]
		}
	}
	return nil
}

// SetCondition sets c in conds, keeping LastTransitionTime when the status
// does not change, and reports whether anything changed.
func SetCondition(conds *[]Condition, c Condition) bool {
	if old := FindCondition(*conds, c.Type); old != nil {
		if old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message {
			return false
		}
		if old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		*old = c
		return true
	}
	*conds = append(*conds, c)
	return true
}

// Object is implemented by every kind.
type Object interface {
	// GetKind returns the kind field ("Pod").
	GetKind() string
	// Meta returns the object's metadata for reading and writing.
	Meta() *ObjectMeta
	// SpecJSON returns the JSON of the spec alone (spec.go).
	SpecJSON() ([]byte, error)
	setKind(string)
}

// TypeMeta holds the kind field; every kind embeds it.
type TypeMeta struct {
	Kind string `json:"kind"`
}

// GetKind returns the kind field.
func (t *TypeMeta) GetKind() string  { return t.Kind }
func (t *TypeMeta) setKind(k string) { t.Kind = k }

// KeyOf returns the store key of an object.
func KeyOf(o Object) Key {
	k, _ := KindOf(o.GetKind())
	m := o.Meta()
	return Key{Kind: k, App: m.App, Name: m.Name}
}

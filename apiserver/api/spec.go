package api

import (
	"encoding/json"
	"fmt"
)

// SpecJSON methods give the store the JSON of an object's spec, the part
// whose change makes a new Generation, without the store knowing the kinds
// or finding the field by reflection. The bytes are those inside the whole
// object's JSON.

func (o *Node) SpecJSON() ([]byte, error)      { return json.Marshal(&o.Spec) }
func (o *Lease) SpecJSON() ([]byte, error)     { return json.Marshal(&o.Spec) }
func (o *App) SpecJSON() ([]byte, error)       { return json.Marshal(&o.Spec) }
func (o *Workload) SpecJSON() ([]byte, error)  { return json.Marshal(&o.Spec) }
func (o *Pod) SpecJSON() ([]byte, error)       { return json.Marshal(&o.Spec) }
func (o *Service) SpecJSON() ([]byte, error)   { return json.Marshal(&o.Spec) }
func (o *Endpoints) SpecJSON() ([]byte, error) { return json.Marshal(&o.Spec) }
func (o *Revision) SpecJSON() ([]byte, error)  { return json.Marshal(&o.Spec) }
func (o *Event) SpecJSON() ([]byte, error)     { return json.Marshal(&o.Spec) }
func (o *Secret) SpecJSON() ([]byte, error)    { return json.Marshal(&o.Spec) }

// Assign sets *dst to *src; both must be of one kind. The API server uses
// it to write a caller's object over the stored copy inside a transaction
// (an update that keeps the stored status and deletion mark).
func Assign(dst, src Object) {
	switch d := dst.(type) {
	case *Node:
		*d = *src.(*Node)
	case *Lease:
		*d = *src.(*Lease)
	case *App:
		*d = *src.(*App)
	case *Workload:
		*d = *src.(*Workload)
	case *Pod:
		*d = *src.(*Pod)
	case *Service:
		*d = *src.(*Service)
	case *Endpoints:
		*d = *src.(*Endpoints)
	case *Revision:
		*d = *src.(*Revision)
	case *Event:
		*d = *src.(*Event)
	case *PersistentVolume:
		*d = *src.(*PersistentVolume)
	case *Secret:
		*d = *src.(*Secret)
	case *Job:
		*d = *src.(*Job)
	default:
		panic(fmt.Sprintf("api.Assign: unknown kind %T", dst))
	}
}

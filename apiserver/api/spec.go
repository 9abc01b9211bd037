package api

import "encoding/json"

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

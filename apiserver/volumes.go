package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// checkVolumeDelete refuses to delete a persistent volume whose replica
// may still need it (its workload still wants the replica with the volume,
// or a pod of the replica uses it) or whose data its node cannot remove
// now (the node is not ready), unless forced (api.VolumeDeleteProblem).
func (s *Server) checkVolumeDelete(ctx context.Context, key api.Key) error {
	o, err := s.store.Get(ctx, key)
	if err != nil {
		return err
	}
	v := o.(*api.PersistentVolume)
	var node *api.Node
	if n, err := s.store.Get(ctx, api.Key{Kind: api.KindNode, Name: v.Spec.NodeName}); err == nil {
		node = n.(*api.Node)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var w *api.Workload
	if o, err := s.store.Get(ctx, api.Key{Kind: api.KindWorkload, App: v.Metadata.App, Name: v.Spec.Workload}); err == nil {
		w = o.(*api.Workload)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	var pod *api.Pod
	podKey := api.Key{Kind: api.KindPod, App: v.Metadata.App, Name: api.OrdinalPodName(v.Spec.Workload, int(v.Spec.Ordinal))}
	if p, err := s.store.Get(ctx, podKey); err == nil {
		pod = p.(*api.Pod)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := api.VolumeDeleteProblem(v, node, w, pod); err != nil {
		return errorf(http.StatusUnprocessableEntity, wire.ReasonInUse, err)
	}
	return nil
}

package apiserver

import (
	"context"
	"errors"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// checkVolumeDelete refuses to delete a persistent volume whose data its
// node cannot remove now (the node is not ready) or whose replica still
// exists, unless forced (api.VolumeDeleteProblem).
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
	var pod *api.Pod
	podKey := api.Key{Kind: api.KindPod, App: v.Metadata.App, Name: api.OrdinalPodName(v.Spec.Workload, int(v.Spec.Ordinal))}
	if p, err := s.store.Get(ctx, podKey); err == nil {
		pod = p.(*api.Pod)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := api.VolumeDeleteProblem(v, node, pod); err != nil {
		return errorf(http.StatusUnprocessableEntity, wire.ReasonInUse, err)
	}
	return nil
}

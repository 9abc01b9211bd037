package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

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

// deleteVolume deletes a persistent volume the way its data asks: never
// by making the object vanish before its node knew. A delete marks the
// volume (metadata.deletionRequestedAt, 202 Accepted), as a Kubernetes
// PersistentVolume with its finalizer waits for its volume plugin; the
// volume's agent removes the data once no pod there names it, then deletes
// the object: the only delete a node may make of a volume, and only of a
// marked one on it. --force marks it too, then deletes it at once: an
// agent that watched saw the mark and removes the data when it can; a
// node that was down keeps the data as orphaned (docs/volumes.md). A
// node's agent keeps the data of a volume whose object is simply gone
// (a restore of an older backup, a wrong write), since nothing proves it
// was meant to go.
func (s *Server) deleteVolume(ctx context.Context, w http.ResponseWriter, key api.Key, rv int64, force bool, role string) error {
	node, isNode := strings.CutPrefix(role, RoleNodePrefix)
	if !force && !isNode {
		if err := s.checkVolumeDelete(ctx, key); err != nil {
			return err
		}
	}
	o, err := s.store.Get(ctx, key)
	if err != nil {
		return err
	}
	v := o.(*api.PersistentVolume)
	if err := deleteConflict(key, rv, v); err != nil {
		return err
	}
	if isNode {
		if v.Spec.NodeName != node {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not delete volume %s: it is on node %q", node, key, v.Spec.NodeName))
		}
		if !api.Terminating(v) {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not delete volume %s: its deletion was not asked for (a node only finishes one, after it removed the data)", node, key))
		}
	}
	marked, err := s.markDeletion(ctx, v)
	if err != nil {
		return err
	}
	if !force && !isNode {
		writeJSON(w, http.StatusAccepted, marked)
		return nil
	}
	out, err := s.store.Delete(ctx, key, marked.Meta().ResourceVersion)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

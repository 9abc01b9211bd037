package apiserver

import (
	"fmt"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// A binding is a transaction step that puts a pending pod on a node:
//
//	{"op": "bind", "key": "pods/<app>/<name>", "resourceVersion": 42, "nodeName": "node-1"}
//
// The scheduler sends it instead of the whole pod. The server applies it as
// a compare-and-swap inside the store's transaction: the pod must still be
// at resourceVersion (409 Conflict otherwise, as for an update), must not
// be bound to another node or being deleted (409), and gets spec.nodeName
// and the condition Scheduled=True ("bound to <node>"). The write is an
// update like any other: same Generation rule, same MODIFIED watch event.
// Only admins run transactions, so only admins bind.

// bindOp turns a bind step into a store modify.
func (s *Server) bindOp(op wire.TxnOp) (store.Op, error) {
	if op.Object != nil {
		return store.Op{}, badRequest("a bind carries key, resourceVersion and nodeName, not an object")
	}
	k, err := api.ParseKey(op.Key)
	if err != nil {
		return store.Op{}, err
	}
	if k.Kind != api.KindPod {
		return store.Op{}, badRequest(fmt.Sprintf("only pods are bound, not %s", k.Kind))
	}
	if op.ResourceVersion <= 0 {
		return store.Op{}, badRequest(fmt.Sprintf("binding %s needs the resourceVersion the decision was made on", k))
	}
	node := op.NodeName
	if !api.IsDNSSubdomain(node) {
		return store.Op{}, badRequest(fmt.Sprintf("binding %s: node name %q is not a DNS subdomain", k, truncate(node, 64)))
	}
	now := s.opts.Now().UTC()
	return store.Op{Type: store.OpModify, Key: k, ResourceVersion: op.ResourceVersion, Modify: func(obj api.Object) error {
		pod, ok := obj.(*api.Pod)
		if !ok {
			return fmt.Errorf("%w: %s is a %T", api.ErrInvalid, k, obj)
		}
		if b := pod.Spec.NodeName; b != "" && b != node {
			return fmt.Errorf("%s is already bound to node %s: %w", k, b, store.ErrConflict)
		}
		if pod.Metadata.DeletionRequestedAt != nil {
			return fmt.Errorf("%s is being deleted: %w", k, store.ErrConflict)
		}
		pod.Spec.NodeName = node
		api.SetCondition(&pod.Status.Conditions, api.Condition{Type: api.PodScheduled, Status: api.ConditionTrue,
			Reason: "Scheduled", Message: "bound to " + node, LastTransitionTime: now})
		return api.Validate(pod)
	}}, nil
}

// txnWantsObjects reads the objects query parameter of a transaction:
// true (the default) answers the objects as written, false only their
// resourceVersions.
func txnWantsObjects(r *http.Request) (bool, error) {
	switch v := r.URL.Query().Get("objects"); v {
	case "", "true":
		return true, nil
	case "false":
		return false, nil
	default:
		return false, badRequest(fmt.Sprintf("objects=%q: want true or false", truncate(v, 16)))
	}
}

func txnRevisions(objs []api.Object) wire.TxnRevisionsResponse {
	out := wire.TxnRevisionsResponse{ResourceVersions: make([]int64, len(objs))}
	for i, o := range objs {
		out.ResourceVersions[i] = o.Meta().ResourceVersion
	}
	return out
}

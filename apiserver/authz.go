package apiserver

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// request is what authorization decides on.
type request struct {
	verb        string // get, list, watch, create, update, delete, txn, log, exec
	kind        api.Kind
	key         api.Key // Name "" on a create before its body is read
	subresource string  // "" or "status"
}

func (r request) readOnly() bool { return r.verb == "get" || r.verb == "list" || r.verb == "watch" }

// nodeLookup returns the node a stored pod is bound to.
type nodeLookup func(k api.Key) (string, error)

// authorize decides whether role may do req, from the path alone, so that
// it runs before any body is read: a forbidden write is 403 whatever it
// carries. A create's key comes from its body: it is authorized once with
// an empty name (may this role create this kind at all?) and again once
// the body names the object.
//
// Viewers may read everything and read container logs; only admins exec.
// Node roles may read everything but logs, write their own Node and Lease,
// write the status of pods bound to them and of persistent volumes on
// them, delete pods bound to them, finish the deletion of persistent
// volumes on them (deleteVolume), and
// create and update events (about what, authorizeEvent decides once the
// body is read).
func authorize(role string, req request, podNode nodeLookup) error {
	switch {
	case role == RoleAdmin:
		return nil
	case role == RoleViewer:
		if req.readOnly() || req.verb == "log" {
			return nil
		}
		return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role viewer may only read, not %s %s", req.verb, req.kind))
	case strings.HasPrefix(role, RoleNodePrefix):
		node := strings.TrimPrefix(role, RoleNodePrefix)
		if req.readOnly() {
			return nil
		}
		switch {
		case (req.kind == api.KindNode || req.kind == api.KindLease) && req.verb != "delete" &&
			(req.key.Name == node || req.verb == "create" && req.key.Name == ""):
			return nil
		case req.kind == api.KindEvent && (req.verb == "create" || req.verb == "update") && req.subresource == "":
			return nil
		case req.kind == api.KindPod && (req.verb == "update" && req.subresource == "status" || req.verb == "delete"),
			req.kind == api.KindVolume && (req.verb == "update" && req.subresource == "status" || req.verb == "delete"):
			on, err := podNode(req.key)
			if err != nil {
				return err
			}
			if on == node {
				return nil
			}
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not change %s %s: it is on node %q", node, strings.ToLower(req.kind.Singular()), req.key, on))
		}
		return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not %s %s", node, req.verb, req.key))
	}
	return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("role %q grants nothing", role))
}

// authorizeEvent decides whether role may write ev: a node only about
// itself or about a pod bound to it or a persistent volume on it (in the
// object's app), so that a node cannot put words in the mouth of another
// node or of a controller.
func authorizeEvent(role string, ev *api.Event, podNode nodeLookup) error {
	node, isNode := strings.CutPrefix(role, RoleNodePrefix)
	if !isNode {
		return nil
	}
	ref := ev.Spec.Object
	switch ref.Kind {
	case api.KindNode:
		if ref.Name == node {
			return nil
		}
	case api.KindPod, api.KindVolume:
		what := ref.Kind.Singular()
		if ref.App != ev.Metadata.App {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not record event %s about %s %s/%s: an event lives in its %s's app", node, ev.Metadata.Name, what, ref.App, ref.Name, what))
		}
		bound, err := podNode(api.Key{Kind: ref.Kind, App: ref.App, Name: ref.Name})
		if err != nil {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not record event %s about %s %s/%s: %w", node, ev.Metadata.Name, what, ref.App, ref.Name, err))
		}
		if bound == node {
			return nil
		}
		return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not record event %s about %s %s/%s: it is on %q", node, ev.Metadata.Name, what, ref.App, ref.Name, bound))
	}
	return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may record events only about itself and the pods and persistent volumes on it, not about %s %s", node, ref.Kind, ref.Name))
}

// authorizeNodeCreate decides whether role may create n (authorize has
// checked the name): a node registers with its own host name label and the
// labels it joins with, but none other of Capstan's (capstan.io/).
func authorizeNodeCreate(role string, n *api.Node) error {
	node, isNode := strings.CutPrefix(role, RoleNodePrefix)
	if !isNode {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(n.Metadata.Labels)) {
		if v := n.Metadata.Labels[k]; !api.NodeMayRegisterLabel(node, k, v) {
			return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not register with label %s=%s: labels under %s are Capstan's (the agent sets %s=%s, %s and %s itself); drop it from capstan agent --labels",
				node, k, v, api.SystemLabelPrefix, api.LabelHostname, node, api.LabelOS, api.LabelArch))
		}
	}
	return nil
}

// nodeLabelChanges checks the label changes a node makes to its own Node
// from old to upd: only those api.NodeMaySetLabel allows, for the new value
// and, on a change or removal, for the old one.
func nodeLabelChanges(node string, old, upd map[string]string) error {
	keys := slices.Sorted(maps.Keys(old))
	for k := range upd {
		if _, ok := old[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		ov, had := old[k]
		nv, has := upd[k]
		if had == has && ov == nv {
			continue
		}
		if (!had || api.NodeMaySetLabel(node, k, ov)) && (!has || api.NodeMaySetLabel(node, k, nv)) {
			continue
		}
		return errorf(http.StatusForbidden, wire.ReasonForbidden, fmt.Errorf("node %s may not change its label %s (%s to %s): a node changes only %s (to its own name), %s, %s and labels under %s; an admin changes the others (PUT /api/v1/nodes/%s with an admin token)",
			node, k, labelValue(ov, had), labelValue(nv, has), api.LabelHostname, api.LabelOS, api.LabelArch, api.NodeLabelPrefix, node))
	}
	return nil
}

func labelValue(v string, ok bool) string {
	if !ok {
		return "none"
	}
	return strconv.Quote(v)
}

// nodeUpdateCheck is the check, run on the stored object inside the store's
// transaction, of a node's update (role node:NAME; nil for other roles):
// that way a write is judged on what it replaces, not on what authorize saw
// earlier. A pod's status is written only while the pod is still bound to
// the node (a pod of an ordered workload keeps its name when it is made
// again elsewhere). A node's update of its own Node keeps spec.unschedulable
// as stored (cordoning is the admins') and changes only the labels
// nodeLabelChanges allows, as Kubernetes' NodeRestriction admission does,
// so that a node cannot draw to itself pods pinned elsewhere, nor their
// secrets.
func nodeUpdateCheck(role string, in api.Object, statusOnly bool) func(api.Object) error {
	node, isNode := strings.CutPrefix(role, RoleNodePrefix)
	if !isNode {
		return nil
	}
	switch in := in.(type) {
	case *api.Pod:
		return func(cur api.Object) error {
			if bound := cur.(*api.Pod).Spec.NodeName; bound != node {
				return fmt.Errorf("%s is now bound to %q, not to node %s: %w", api.KeyOf(cur), bound, node, store.ErrConflict)
			}
			return nil
		}
	case *api.PersistentVolume:
		return func(cur api.Object) error {
			if on := cur.(*api.PersistentVolume).Spec.NodeName; on != node {
				return fmt.Errorf("%s is now on %q, not on node %s: %w", api.KeyOf(cur), on, node, store.ErrConflict)
			}
			return nil
		}
	case *api.Node:
		if statusOnly {
			return nil
		}
		return func(cur api.Object) error {
			stored := cur.(*api.Node)
			if err := nodeLabelChanges(node, stored.Metadata.Labels, in.Metadata.Labels); err != nil {
				return err
			}
			in.Spec.Unschedulable = stored.Spec.Unschedulable
			return nil
		}
	}
	return nil
}

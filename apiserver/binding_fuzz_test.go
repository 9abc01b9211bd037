package apiserver

import (
	"bytes"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// FuzzTxnBind parses transaction bodies as handleTxn does and turns the
// bind steps into store operations: bad input must be a 4xx error, never a
// panic, and an accepted bind must name a pod, a revision and a valid node,
// and bind an unbound pod to exactly that node.
func FuzzTxnBind(f *testing.F) {
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":7,"nodeName":"n1"}]}`))
	f.Add([]byte(`{"ops":[{"op":"bind","key":"nodes/n1","resourceVersion":7,"nodeName":"n1"}]}`))
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":-7,"nodeName":"N/1"}]}`))
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods/shop/web","resourceVersion":7,"nodeName":"n1","object":{}}]}`))
	f.Add([]byte(`{"ops":[{"op":"bind","key":"pods//web","nodeName":""}]}`))
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &Server{opts: Options{Now: func() time.Time { return now }}}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := wire.DecodeTxnRequest(bytes.NewReader(body))
		if err != nil {
			return
		}
		for _, op := range req.Ops {
			if op.Op != "bind" {
				continue
			}
			sop, err := s.bindOp(op)
			if err != nil {
				if code := toStatus(err).Code; code < 400 || code >= 500 {
					t.Fatalf("bind %+v: %v answered %d", op, err, code)
				}
				continue
			}
			if sop.Type != store.OpModify || sop.Key.Kind != api.KindPod || sop.Key.Validate() != nil || sop.ResourceVersion <= 0 ||
				!api.IsDNSSubdomain(op.NodeName) || sop.Modify == nil {
				t.Fatalf("bind %+v accepted as %+v", op, sop)
			}
			p := api.KindPod.New().(*api.Pod)
			p.Metadata = api.ObjectMeta{App: sop.Key.App, Name: sop.Key.Name, ResourceVersion: sop.ResourceVersion}
			p.Spec.Containers = []api.Container{{Name: "web", Image: "example/web:v1"}}
			if err := sop.Modify(p); err != nil {
				if code := toStatus(err).Code; code < 400 || code >= 500 {
					t.Fatalf("bind %+v of a valid pod: %v answered %d", op, err, code)
				}
				continue
			}
			c := api.FindCondition(p.Status.Conditions, api.PodScheduled)
			if p.Spec.NodeName != op.NodeName || c == nil || c.Status != api.ConditionTrue || !c.LastTransitionTime.Equal(now) {
				t.Fatalf("bind %+v gave %+v", op, p)
			}
			// Bound elsewhere: a conflict.
			p.Spec.NodeName = "other-" + op.NodeName
			if err := sop.Modify(p); toStatus(err).Code != 409 {
				t.Fatalf("bind %+v of a pod on another node: %v", op, err)
			}
		}
	})
}

package gc

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestOrphans runs testdata scripts. Commands:
//
//	object kind=K name=N [app=A] [uid=U] [owner=(kind,name,uid)] [terminating]
//	delete name=N          the object goes away (its UID no longer exists)
//	collect                 list the orphans and delete them
func TestOrphans(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		var objs []api.Object
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			str := func(key, def string) string {
				if a, ok := d.Arg(key); ok {
					return a.SingleVal(t)
				}
				return def
			}
			switch d.Cmd {
			case "object":
				k, _ := api.ParseKind(str("kind", ""))
				o := k.New()
				m := o.Meta()
				m.Name, m.UID = str("name", ""), str("uid", "uid-"+str("name", ""))
				if !k.ClusterScoped() {
					m.App = str("app", "shop")
				}
				if a, ok := d.Arg("owner"); ok {
					ok, _ := api.ParseKind(a.Vals[0])
					m.Owner = &api.OwnerRef{Kind: ok, Name: a.Vals[1]}
					if len(a.Vals) > 2 {
						m.Owner.UID = a.Vals[2]
					}
				}
				if d.HasArg("terminating") {
					m.DeletionRequestedAt = new(time.Unix(0, 0))
				}
				objs = append(objs, o)
				return api.KeyOf(o).String()
			case "delete":
				for i, o := range objs {
					if o.Meta().Name == str("name", "") {
						objs = append(objs[:i], objs[i+1:]...)
						return "ok"
					}
				}
				return "no such object"
			case "collect":
				uids := map[string]bool{}
				for _, o := range objs {
					uids[o.Meta().UID] = true
				}
				orphans := Orphans(objs, uids)
				var out []string
				for _, o := range orphans {
					k, _ := OwnerOf(o)
					out = append(out, fmt.Sprintf("delete %s (owner %s %s/%s gone)", api.KeyOf(o), k.Kind.Singular(), k.App, k.Name))
					for i, x := range objs {
						if x == o {
							objs = append(objs[:i], objs[i+1:]...)
							break
						}
					}
				}
				if len(out) == 0 {
					return "nothing to collect"
				}
				return strings.Join(out, "\n")
			}
			d.Fatalf(t, "unknown command %q", d.Cmd)
			return ""
		})
	})
}

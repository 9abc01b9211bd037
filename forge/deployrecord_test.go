package forge

import (
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The deploy record is read from annotations anyone with write access to
// the API may edit: it never panics, never yields a negative ID, and
// reads back what it wrote.
func FuzzDeployRecord(f *testing.F) {
	f.Add("pending", "12", "deploy")
	f.Add("success", "-3", "")
	f.Add("", "x", "prod")
	f.Fuzz(func(t *testing.T, state, id, env string) {
		rec, ok := parseDeployRecord(map[string]string{AnnotationDeployState: state, AnnotationDeployID: id, AnnotationDeployEnvironment: env})
		if !ok || rec.ID < 0 || rec.State != State(state) || rec.Environment != env {
			t.Fatalf("parse(%q, %q, %q) = %+v, %v", state, id, env, rec, ok)
		}
		ann := map[string]string{}
		rec.write(ann)
		if back, ok := parseDeployRecord(ann); !ok || back != rec {
			t.Fatalf("record %+v read back as %+v", rec, back)
		}
	})
}

func TestDeployRecordHolder(t *testing.T) {
	a, b := revision("a", commitA, "Applied", false), revision("b", commitA, "Applied", false)
	other := revision("a", commitB, "Applied", false)
	if _, _, _, ok := recordHolder(nil, "deploy", commitA); ok {
		t.Error("a holder without any Revision")
	}
	key, _, has, ok := recordHolder([]*api.Revision{other, b, a}, "deploy", commitA)
	if !ok || has || key.App != "a" {
		t.Errorf("holder %v has=%v ok=%v, want the first Revision of the commit, a, without a record", key, has, ok)
	}
	b.Metadata.Annotations = map[string]string{AnnotationDeployState: "pending", AnnotationDeployID: "7"}
	key, rec, has, _ := recordHolder([]*api.Revision{other, b, a}, "deploy", commitA)
	if !has || key.App != "b" || rec.ID != 7 {
		t.Errorf("holder %v %+v has=%v, want b's record, deployment 7", key, rec, has)
	}
}

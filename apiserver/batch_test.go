package apiserver_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// postBatch posts body to the batch endpoint as c and returns the results.
func postBatch(t *testing.T, c *client.Client, body string) []struct {
	Object json.RawMessage
	Status *wire.Status
} {
	t.Helper()
	var out struct {
		Results []struct {
			Object json.RawMessage
			Status *wire.Status
		}
	}
	if err := c.Do(t.Context(), http.MethodPost, wire.BatchPath, json.RawMessage(body), &out); err != nil {
		t.Fatal(err)
	}
	return out.Results
}

const batchPod = `{"kind":"Pod","metadata":{"name":%q,"app":"shop"},"spec":{"containers":[{"name":"web","image":"example/web:v1"}]}}`

// Each step of a batch is answered as it would be alone: a bad object, a
// step that is no create and a create the caller may not make fail alone,
// and the others are stored.
func TestBatchStepsAnsweredOneByOne(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	res := postBatch(t, cl.Client, `{"ops":[`+
		`{"op":"create","object":`+fmt.Sprintf(batchPod, "a")+`},`+
		`{"op":"create","object":{"kind":"Pod","metadata":{"name":"b","app":"shop"},"spec":{"containers":[]},"colour":"red"}},`+
		`{"op":"delete","key":"pods/shop/a"},`+
		`{"op":"create","object":`+fmt.Sprintf(batchPod, "Bad_Name")+`},`+
		`{"op":"create","object":`+fmt.Sprintf(batchPod, "c")+`}]}`)
	if len(res) != 5 {
		t.Fatalf("%d results for 5 steps", len(res))
	}
	for i, want := range []wire.Reason{"", wire.ReasonInvalid, wire.ReasonBadRequest, wire.ReasonInvalid, ""} {
		switch {
		case want == "" && res[i].Status != nil:
			t.Errorf("step %d: %s: %s, want stored", i, res[i].Status.Reason, res[i].Status.Message)
		case want == "":
			obj, err := api.Decode(api.KindPod, res[i].Object)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if _, err := cl.Client.Get(t.Context(), api.KeyOf(obj)); err != nil {
				t.Errorf("step %d answered stored but: %v", i, err)
			}
		case res[i].Status == nil || res[i].Status.Reason != want:
			t.Errorf("step %d: %+v, want %s", i, res[i].Status, want)
		}
	}
	if _, err := cl.Client.Get(t.Context(), api.Key{Kind: api.KindPod, App: "shop", Name: "b"}); !client.IsNotFound(err) {
		t.Errorf("the step with an unknown field: %v, want not stored", err)
	}

	// A viewer may create nothing: each step is refused, the batch answered.
	res = postBatch(t, cl.Token(t, "viewer"), `{"ops":[{"op":"create","object":`+fmt.Sprintf(batchPod, "d")+`}]}`)
	if st := res[0].Status; st == nil || st.Code != http.StatusForbidden {
		t.Fatalf("a viewer's create in a batch: %+v, want 403", st)
	}

	var se *client.StatusError
	err := cl.Client.Do(t.Context(), http.MethodPost, wire.BatchPath, json.RawMessage(`{"ops":[]}`), nil)
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("an empty batch: %v, want 400", err)
	}
}

// A create over its kind's cap is 413 naming the cap, alone and as a
// batch's step, and nothing of it is stored (the store checks the size
// of what it would store).
func TestCreateOverItsCapIs413(t *testing.T) {
	cl := apiservertest.Start(t, apiservertest.Options{})
	limit := api.MaxObjectBytes(api.KindPod)
	huge := `{"kind":"Pod","metadata":{"name":"big","app":"shop"},"spec":{"containers":[{"name":"web","image":"example/web:v1","env":[{"name":"PAD","value":"` + strings.Repeat("x", limit) + `"}]}]}}`
	err := cl.Client.Do(t.Context(), http.MethodPost, "/api/v1/pods", json.RawMessage(huge), nil)
	var se *client.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusRequestEntityTooLarge || !strings.Contains(se.Message, fmt.Sprint(limit)) {
		t.Fatalf("a create over the cap: %v, want 413 naming %d", err, limit)
	}
	res := postBatch(t, cl.Client, `{"ops":[{"op":"create","object":`+huge+`},{"op":"create","object":`+fmt.Sprintf(batchPod, "small")+`}]}`)
	if st := res[0].Status; st == nil || st.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("a batch's create over the cap: %+v, want 413", st)
	}
	if res[1].Status != nil {
		t.Fatalf("the other step: %+v", res[1].Status)
	}
	if _, err := cl.Client.Get(t.Context(), api.Key{Kind: api.KindPod, App: "shop", Name: "big"}); !client.IsNotFound(err) {
		t.Fatalf("the create over the cap: %v, want not stored", err)
	}
}

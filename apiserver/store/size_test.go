package store

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The store refuses an object whose encoding, as stored, is over its
// kind's cap (the API server leaves that check to it), on create and on
// update alike, and keeps nothing of it.
func TestObjectOverItsCapRefused(t *testing.T) { eachBackend(t, testObjectOverItsCapRefused) }

func testObjectOverItsCapRefused(t *testing.T, b backend) {
	ctx := context.Background()
	s, _ := b.open(t, Options{})
	huge := func(name string) *api.Pod {
		p := testPod("shop", name, "")
		p.Spec.Containers[0].Env = []api.EnvVar{{Name: "PAD", Value: strings.Repeat("x", api.MaxObjectBytes(api.KindPod))}}
		return p
	}
	var tle *api.TooLargeError
	if _, err := s.Create(ctx, huge("big")); !errors.As(err, &tle) || tle.Kind != api.KindPod {
		t.Fatalf("create over the cap: %v, want a TooLargeError", err)
	}
	if _, err := s.Get(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "big"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the refused create: %v, want not stored", err)
	}
	obj, err := s.Create(ctx, testPod("shop", "web", ""))
	if err != nil {
		t.Fatal(err)
	}
	grown := huge("web")
	grown.Metadata = *obj.Meta()
	if _, err := s.Update(ctx, grown); !errors.As(err, &tle) {
		t.Fatalf("update over the cap: %v, want a TooLargeError", err)
	}
	got, err := s.Get(ctx, api.KeyOf(obj))
	if err != nil || len(got.(*api.Pod).Spec.Containers[0].Env) != 0 {
		t.Fatalf("after the refused update: %v, %+v", err, got)
	}
}

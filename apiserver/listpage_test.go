package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// A list asked with ?limit= comes in pages, each with a token for the
// next, in key order, every page reporting the first page's revision; an
// object created meanwhile after the last key read is in a later page.
func TestListPages(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	for i := range 25 {
		if _, err := c.Client.Create(ctx, pod("a", fmt.Sprintf("p%02d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Client.Create(ctx, pod("b", "other", "")); err != nil {
		t.Fatal(err)
	}
	get := func(query string) wire.List {
		t.Helper()
		code, body := raw(t, c, c.Config.Token, http.MethodGet, "/api/v1/pods?"+query, nil)
		if code != http.StatusOK {
			t.Fatalf("GET ?%s = %d %s", query, code, body)
		}
		var l wire.List
		if err := json.Unmarshal([]byte(body), &l); err != nil {
			t.Fatalf("GET ?%s: %v in %q", query, err, body)
		}
		return l
	}
	var names []string
	first := get("app=a&limit=10")
	l := first
	for page := 0; ; page++ {
		if l.ResourceVersion != first.ResourceVersion {
			t.Errorf("page %d at revision %d, want the first page's %d", page, l.ResourceVersion, first.ResourceVersion)
		}
		for _, it := range l.Items {
			obj, err := api.Decode(api.KindPod, it)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, obj.Meta().Name)
		}
		if page == 0 {
			if len(l.Items) != 10 || l.Continue == "" {
				t.Fatalf("first page: %d items, continue %q; want 10 and a token", len(l.Items), l.Continue)
			}
			// Created after the first page was read, past its last key.
			if _, err := c.Client.Create(ctx, pod("a", "p99", "")); err != nil {
				t.Fatal(err)
			}
		}
		if l.Continue == "" {
			break
		}
		l = get("app=a&limit=10&continue=" + l.Continue)
	}
	if len(names) != 26 {
		t.Fatalf("paged list = %d pods %v, want p00-p24 and p99", len(names), names)
	}
	for i, n := range names[:25] {
		if n != fmt.Sprintf("p%02d", i) {
			t.Fatalf("item %d = %s: pages out of order or repeated: %v", i, n, names)
		}
	}
	// The whole list without a limit, read and written a few objects at
	// a time: every object once, in key order, and no token.
	t.Cleanup(apiserver.SetWholeListChunk(4))
	all := get("app=a")
	if len(all.Items) != 26 || all.Continue != "" {
		t.Errorf("unlimited list: %d items, continue %q", len(all.Items), all.Continue)
	}
	for i, it := range all.Items {
		obj, err := api.Decode(api.KindPod, it)
		if err != nil {
			t.Fatal(err)
		}
		if obj.Meta().Name != names[i] {
			t.Fatalf("unlimited list: item %d is %s, want %s (the paged list's order)", i, obj.Meta().Name, names[i])
		}
	}
	if all := get(""); len(all.Items) != 27 || all.ResourceVersion < first.ResourceVersion {
		t.Errorf("every pod: %d items at revision %d, want 27 at %d or later", len(all.Items), all.ResourceVersion, first.ResourceVersion)
	}
	// A limit that ends exactly at the last object gives no token.
	if l := get("app=b&limit=1"); len(l.Items) != 1 || l.Continue != "" {
		t.Errorf("last page exactly full: %d items, continue %q; want 1 and none", len(l.Items), l.Continue)
	}
}

func TestListPageErrors(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{Store: store.Options{MaxEvents: 1}})
	for i := range 3 {
		if _, err := c.Client.Create(ctx, pod("a", fmt.Sprintf("p%d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	code, body := raw(t, c, c.Config.Token, http.MethodGet, "/api/v1/pods?app=a&limit=1", nil)
	var l wire.List
	if code != http.StatusOK || json.Unmarshal([]byte(body), &l) != nil || l.Continue == "" {
		t.Fatalf("first page = %d %s", code, body)
	}
	for _, tc := range []struct {
		name, query string
		code        int
	}{
		{"negative limit", "limit=-1", http.StatusBadRequest},
		{"limit too large", "limit=10001", http.StatusBadRequest},
		{"not a token", "limit=1&continue=%25%25", http.StatusBadRequest},
		{"token of another app", "app=b&limit=1&continue=" + l.Continue, http.StatusBadRequest},
	} {
		if code, body := raw(t, c, c.Config.Token, http.MethodGet, "/api/v1/pods?"+tc.query, nil); code != tc.code {
			t.Errorf("%s: GET ?%s = %d %s, want %d", tc.name, tc.query, code, body, tc.code)
		}
	}
	// Once the first page's revision is compacted, its token expires.
	for _, name := range []string{"later", "later2"} {
		if _, err := c.Client.Create(ctx, pod("a", name, "")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Store.Compact(); err != nil {
		t.Fatal(err)
	}
	code, body = raw(t, c, c.Config.Token, http.MethodGet, "/api/v1/pods?app=a&limit=1&continue="+l.Continue, nil)
	if code != http.StatusGone {
		t.Errorf("continue after compaction = %d %s, want 410", code, body)
	}
}

// The client pages through: List with a small page size returns what one
// request returns, at the first page's revision.
func TestClientListPagesThrough(t *testing.T) {
	ctx := context.Background()
	c := apiservertest.Start(t, apiservertest.Options{})
	for i := range 23 {
		if _, err := c.Client.Create(ctx, pod("a", fmt.Sprintf("p%02d", i), "")); err != nil {
			t.Fatal(err)
		}
	}
	whole, rev, err := c.Client.List(ctx, api.KindPod, client.ListOptions{App: "a", PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	paged, prev, err := c.Client.List(ctx, api.KindPod, client.ListOptions{App: "a", PageSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(whole) != 23 || len(paged) != 23 || rev != prev {
		t.Fatalf("whole %d at %d, paged %d at %d; want 23 at the same revision", len(whole), rev, len(paged), prev)
	}
	for i := range whole {
		if whole[i].Meta().Name != paged[i].Meta().Name {
			t.Fatalf("item %d: %s paged, %s whole", i, paged[i].Meta().Name, whole[i].Meta().Name)
		}
	}
}

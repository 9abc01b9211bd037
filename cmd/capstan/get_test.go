package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/internal/testenv"
	"sigs.k8s.io/yaml"
)

func TestGetDescribeDelete(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createPod(t, c.Client, "web-1", "n1")
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"get", "pods"}, []string{"APP", "NAME", "shop", "web-1", "ContainerCreating"}},
		{[]string{"get", "po", "--app", "shop", "-o", "wide"}, []string{"NODE", "n1"}},
		{[]string{"get", "pod", "shop/web-1", "-o", "json"}, []string{`"name": "web-1"`}},
		{[]string{"get", "pod", "web-1", "--app", "shop", "-o", "yaml"}, []string{"name: web-1"}},
		// KIND/NAME, as kubectl takes it.
		{[]string{"get", "pod/shop/web-1"}, []string{"web-1", "ContainerCreating"}},
		{[]string{"get", "po/web-1", "--app", "shop", "-o", "name"}, []string{"shop/web-1"}},
		{[]string{"describe", "pod/shop/web-1"}, []string{"image: example/hello:v1", "Events:"}},
		{[]string{"get", "nodes"}, []string{"No nodes found."}},
		{[]string{"describe", "pod", "shop/web-1"}, []string{"image: example/hello:v1", "Events:"}},
		{[]string{"delete", "pod", "shop/web-1"}, []string{"pods/shop/web-1 terminating"}},
		{[]string{"get", "pods"}, []string{"Terminating"}},
		{[]string{"delete", "pod", "shop/web-1", "--force"}, []string{"pods/shop/web-1 deleted"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := run(t, append(tt.args, "--config", cfg)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	for _, bad := range [][]string{{"get", "widgets"}, {"get", "pod", "web-1"}, {"get", "pods", "-o", "xml"}, {"get", "pod", "shop/nope"}} {
		if out, err := run(t, append(bad, "--config", cfg)...); err == nil {
			t.Errorf("%v succeeded:\n%s", bad, out)
		}
	}
	if _, err := run(t, "get", "pods", "--config", "/nonexistent/admin.yaml"); err == nil || !strings.Contains(err.Error(), "no client config") {
		t.Errorf("missing config: %v", err)
	}
}

func TestTokenCommands(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	out, err := run(t, "token", "create", "--description", "rack 4", "--config", cfg)
	if err != nil || !strings.HasPrefix(out, "capstan-join:") {
		t.Fatalf("create: %v %q", err, out)
	}
	out, err = run(t, "token", "ls", "--config", cfg)
	if err != nil || !strings.Contains(out, "rack 4") || !strings.Contains(out, "join") {
		t.Fatalf("ls: %v\n%s", err, out)
	}
	var id string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "rack 4") {
			id = strings.Fields(line)[0]
		}
	}
	if out, err := run(t, "token", "revoke", id, "--config", cfg); err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %v %s", err, out)
	}
	if out, _ := run(t, "token", "ls", "--config", cfg); strings.Contains(out, "rack 4") {
		t.Fatalf("revoked token still listed:\n%s", out)
	}
}

// The unknown-kind error listed every kind but secrets.
func TestGetUnknownKindListsEveryKind(t *testing.T) {
	_, err := run(t, "get", "widgets")
	if err == nil {
		t.Fatal("get widgets: no error")
	}
	for _, k := range api.Kinds {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("error %q does not name %s", err, k)
		}
	}
}

// An app is its own app: `get app shop` named no app and was refused with
// "apps live in an app: give --app APP or APP/NAME", as were describe and
// delete; only the odd shop/shop worked.
func TestAppByName(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	if _, err := c.Client.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"get", "app", "shop"},
		{"get", "apps", "shop", "-o", "json"},
		{"get", "app", "shop/shop"},
		{"describe", "app", "shop"},
	} {
		out, err := run(t, append(args, "--config", cfg)...)
		if err != nil || !strings.Contains(out, "shop") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	if _, err := run(t, "get", "app", "other/shop", "--config", cfg); err == nil || !strings.Contains(err.Error(), "an app's name is its app") {
		t.Errorf("get app other/shop: %v, want a refusal naming the mismatch", err)
	}
}

// The server ends every watch after --watch-max-lifetime (30 min by
// default) for the client to resume; get -w did not resume: it stopped
// with "error: watch ended: EOF (run the command again to resume)". It now
// runs until Ctrl-C, printing each change once across the resumptions.
func TestGetWatchResumes(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{Server: apiserver.Options{WatchMaxLifetime: 200 * time.Millisecond}})
	cfg := c.Server.AdminConfigPath()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	create := func(name string) { createPod(t, c.Client, name, "n1") }
	create("pod-00")
	out, done := startWatch(t, "get", "pods", "-w", "--config", cfg)
	waitOutput(t, out, done, "pod-00")
	// Each watch lasts at most 200 ms: a second of changes spans several.
	n := 0
	for start := time.Now(); time.Since(start) < time.Second || n < 3; {
		n++
		name := fmt.Sprintf("pod-%02d", n)
		create(name)
		waitOutput(t, out, done, name)
	}
	if _, err := c.Client.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: "pod-01"}, client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, done, "(deleted) shop")
	text := out.String()
	for i := 0; i <= n; i++ {
		name := fmt.Sprintf("pod-%02d ", i)
		want := 1
		if i == 1 {
			want = 2 // added, deleted
		}
		if got := strings.Count(text, name); got != want {
			t.Errorf("%s printed %d times, want %d:\n%s", name, got, want, text)
		}
	}
}

// objectKey parses what users type as NAME or APP/NAME: whatever it is
// given, it returns a valid key or an error, and an app's key names
// itself.
func FuzzObjectKey(f *testing.F) {
	for _, s := range []string{"web-1", "shop/web-1", "/x", "x/", "a/b/c", "", "shop/shop", "Bad_Name"} {
		f.Add(s, "", "pods")
		f.Add(s, "shop", "apps")
		f.Add(s, "", "nodes")
	}
	f.Fuzz(func(t *testing.T, arg, app, kind string) {
		k, ok := api.ParseKind(kind)
		if !ok {
			return
		}
		key, err := objectKey(k, arg, app)
		if err != nil {
			if exitCode(err) != usageExit {
				t.Errorf("objectKey(%q, %q, %q): %v exits %d, want %d", k, arg, app, err, exitCode(err), usageExit)
			}
			return
		}
		if err := key.Validate(); err != nil {
			t.Errorf("objectKey(%q, %q, %q) = %v, invalid: %v", k, arg, app, key, err)
		}
		if k == api.KindApp && key.App != key.Name {
			t.Errorf("objectKey(%q, %q, %q) = %v: an app's key names itself", k, arg, app, key)
		}
	})
}

// A missing object said only "pods/shop/nope: not found" (an app
// "apps/nope/nope"); it now names it as the user does, says how
// to list what there is, and still exits 1 (not 2: the command line was
// fine). logs --tail -5 printed the whole log; it is now refused.
//
// A misspelt app said "pod shpo/web-1 not found: 'capstan get pods --app
// shpo' lists them", a command that lists nothing; it now says there is no
// app shpo.
func TestNotFoundAndTail(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createApp(t, c.Client, "shop")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "pod", "shop/nope"}, "pod shop/nope not found: 'capstan get pods --app shop' lists them"},
		{[]string{"describe", "pod", "nope", "--app", "shop"}, "pod shop/nope not found: 'capstan get pods --app shop' lists them"},
		{[]string{"delete", "svc", "shop/nope"}, "service shop/nope not found: 'capstan get services --app shop' lists them"},
		{[]string{"get", "node", "nope"}, "node nope not found: 'capstan get nodes' lists them"},
		{[]string{"describe", "app", "nope"}, "app nope not found: 'capstan get apps' lists them"},
		{[]string{"get", "app", "nope"}, "app nope not found: 'capstan get apps' lists them"},
		{[]string{"logs", "shop/nope"}, "pod shop/nope not found: 'capstan get pods --app shop' lists them"},
		{[]string{"exec", "shop/nope", "--", "ls"}, "pod shop/nope not found: 'capstan get pods --app shop' lists them"},
		{[]string{"get", "pod", "shpo/nope"}, "pod shpo/nope not found: there is no app shpo ('capstan get apps' lists the apps)"},
		{[]string{"describe", "wl", "nope", "--app", "shpo"}, "workload shpo/nope not found: there is no app shpo"},
		{[]string{"logs", "shpo/nope"}, "pod shpo/nope not found: there is no app shpo"},
		// These said "app nope: apps/nope/nope: not found" and "run
		// shop/nope: workloads/shop/nope: not found".
		{[]string{"sync", "nope"}, "app nope not found: 'capstan get apps' lists them"},
		{[]string{"rollout", "status", "nope"}, "app nope not found: 'capstan get apps' lists them (is it in the tracked repository?)"},
		{[]string{"run", "shop/nope"}, "workload shop/nope not found: 'capstan get workloads --app shop' lists them"},
	} {
		_, err := run(t, append([]string{"--config", cfg}, tt.args...)...)
		// The store's key ("apps/nope/nope") is not how the user named it.
		if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "/nope/nope") {
			t.Errorf("%v: %v (exit %d), want exit 1 and %q", tt.args, err, exitCode(err), tt.want)
		}
	}
	if _, err := run(t, "logs", "shop/web-1", "--tail", "-5", "--config", cfg); err == nil || exitCode(err) != usageExit || !strings.Contains(err.Error(), "--tail -5") {
		t.Errorf("logs --tail -5: %v (exit %d), want a usage error", err, exitCode(err))
	}
}

// createApp makes an App object name, as sync does.
func createApp(t *testing.T, c *client.Client, name string) {
	t.Helper()
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: name, App: name}
	if _, err := c.Create(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

// get KIND NAME -w printed the object and returned, the -w dropped without
// a word; it now prints that object's changes (and not the others').
func TestGetOneWatch(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createApp(t, c.Client, "shop") // else "there is no app shop"
	for _, name := range []string{"web-1", "web-2"} {
		createPod(t, c.Client, name, "n1")
	}
	if _, err := run(t, "get", "pod", "shop/nope", "-w", "--config", cfg); !client.IsNotFound(err) || !strings.Contains(err.Error(), "lists them") {
		t.Errorf("get pod shop/nope -w: %v, want not found", err)
	}
	out, done := startWatch(t, "get", "pod", "shop/web-2", "-w", "--config", cfg)
	waitOutput(t, out, done, "web-2")
	for _, name := range []string{"web-1", "web-2"} {
		if _, err := c.Client.Delete(ctx, api.Key{Kind: api.KindPod, App: "shop", Name: name}, client.DeleteOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	waitOutput(t, out, done, "(deleted) web-2")
	if text := out.String(); strings.Contains(text, "web-1") || strings.Contains(text, "shop ") {
		t.Errorf("output shows another pod or an APP column:\n%s", text)
	}
}

// get -w of an empty list printed the rows of the changes with no header
// (the header came with the list's rows); the header now comes first.
func TestGetWatchEmptyListHasHeader(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	createApp(t, c.Client, "shop")
	out, done := startWatch(t, "get", "pods", "--app", "shop", "-w", "--config", c.Server.AdminConfigPath())
	waitOutput(t, out, done, "No pods found in app shop.")
	createPod(t, c.Client, "web-1", "n1")
	waitOutput(t, out, done, "web-1")
	lines := strings.Split(out.String(), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[1], "NAME ") || !strings.HasPrefix(lines[2], "web-1 ") {
		t.Errorf("want the message, the header and then the row:\n%s", out.String())
	}
}

// startWatch runs a command that runs until Ctrl-C (get -w) and, when the
// test ends, stops it and checks that it ended without an error.
func startWatch(t *testing.T, args ...string) (*testenv.SyncBuffer, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &testenv.SyncBuffer{}
	root := newRootCmd()
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs(args)
	done, finished := make(chan error, 1), make(chan struct{})
	var result error
	go func() {
		result = root.ExecuteContext(ctx)
		close(finished)
		done <- result
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
		if result != nil {
			t.Errorf("%v after Ctrl-C: %v", args, result)
		}
	})
	return out, done
}

// get -w -o json printed a deleted object as it printed a change, so a
// script could not tell them apart (--output-watch-events now wraps each
// change with its type); get -w -o yaml ran the objects together into one
// YAML document with every key repeated.
func TestGetWatchJSONYAML(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	jsonOut, jsonDone := startWatch(t, "get", "pods", "-w", "-o", "json", "--output-watch-events", "--config", cfg)
	yamlOut, yamlDone := startWatch(t, "get", "pods", "-w", "-o", "yaml", "--config", cfg)
	waitOutput(t, jsonOut, jsonDone, "List")
	waitOutput(t, yamlOut, yamlDone, "List")
	p := createPod(t, c.Client, "web-1", "n1")
	if _, err := c.Client.Delete(ctx, api.KeyOf(p), client.DeleteOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, jsonOut, jsonDone, `"DELETED"`)
	dec := json.NewDecoder(strings.NewReader(jsonOut.String()))
	var types []string
	for {
		var v struct {
			Kind   string          `json:"kind"`
			Type   string          `json:"type"`
			Object json.RawMessage `json:"object"`
		}
		if err := dec.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("json stream: %v:\n%s", err, jsonOut.String())
		}
		if v.Type != "" {
			o, err := api.Decode(api.KindPod, v.Object)
			if err != nil || o.Meta().Name != "web-1" {
				t.Errorf("%s event's object: %v %v", v.Type, o, err)
			}
		}
		types = append(types, v.Kind+v.Type)
	}
	if want := []string{"List", "ADDED", "DELETED"}; !slices.Equal(types, want) {
		t.Errorf("json stream = %v, want %v", types, want)
	}
	// Two documents after the list: web-1 added and deleted.
	for deadline := time.Now().Add(20 * time.Second); strings.Count(yamlOut.String(), "---\n") < 2 || strings.HasSuffix(yamlOut.String(), "---\n"); {
		select {
		case err := <-yamlDone:
			t.Fatalf("get -w -o yaml ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("yaml stream never had two changes:\n%s", yamlOut.String())
		}
	}
	docs := strings.Split(yamlOut.String(), "---\n")
	for i, d := range docs[1:] {
		var o api.Pod
		if err := yaml.UnmarshalStrict([]byte(d), &o); err != nil || o.Metadata.Name != "web-1" {
			t.Errorf("yaml document %d: %v %q", i+1, err, d)
		}
	}
}

// history of a misspelt app said "No revisions yet: git sync records one
// per app and commit.", as if the app were waiting for its first sync.
func TestHistoryOfUnknownApp(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	// The message is on stderr, as get's "No pods found.": stdout had it.
	out, errOut, err := runSplit(t, "history", "shpo", "--config", c.Server.AdminConfigPath())
	if err != nil || out != "" || !strings.Contains(errOut, "No revisions of app shpo") || !strings.Contains(errOut, "is it declared in the tracked repository?") {
		t.Errorf("history shpo: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
	if out, errOut, err := runSplit(t, "history", "--config", c.Server.AdminConfigPath()); err != nil || out != "" || errOut != "No revisions yet: git sync records one per app and commit.\n" {
		t.Errorf("history: %v\nstdout %q\nstderr %q", err, out, errOut)
	}
}

// Shell completion offered kinds and then nothing: NAME, POD (logs, exec)
// now complete from the server. So do the APP of rollout status, history,
// sync and rollback, the NODE of cordon, uncordon, drain and node
// allow-rejoin, and the APP/GROUP of run (job groups only), which offered
// nothing (or file names) before.
func TestCompleteNames(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "web-1", App: "shop"}
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/hello:v1"}}
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop"}
	n := api.KindNode.New().(*api.Node)
	n.Metadata.Name = "n1"
	objs := []api.Object{p, a, n}
	for _, name := range []string{"nightly", "web"} {
		w := api.KindWorkload.New().(*api.Workload)
		w.Metadata = api.ObjectMeta{Name: name, App: "shop"}
		w.Spec.Template = api.PodTemplate{RestartPolicy: api.RestartAlways, Containers: []api.Container{{Name: "c", Image: "example/hello:v1"}}}
		if name == "nightly" {
			w.Spec.Template.RestartPolicy = api.RestartOnFailure
			w.Spec.Job = &api.JobPolicy{Schedule: "0 3 * * *"}
		}
		objs = append(objs, w)
	}
	for _, o := range objs {
		if _, err := c.Client.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		args []string
		want []string // exactly these
	}{
		{[]string{"get", "pods", ""}, []string{"shop/web-1"}},
		{[]string{"describe", "po", "--app", "shop", ""}, []string{"web-1"}},
		{[]string{"delete", "app", ""}, []string{"shop"}},
		{[]string{"logs", ""}, []string{"shop/web-1"}},
		{[]string{"exec", ""}, []string{"shop/web-1"}},
		{[]string{"rollout", "status", ""}, []string{"shop"}},
		{[]string{"history", ""}, []string{"shop"}},
		{[]string{"sync", ""}, []string{"shop"}},
		{[]string{"rollback", ""}, []string{"shop"}},
		{[]string{"cordon", ""}, []string{"n1"}},
		{[]string{"uncordon", ""}, []string{"n1"}},
		{[]string{"drain", ""}, []string{"n1"}},
		{[]string{"node", "allow-rejoin", ""}, []string{"n1"}},
		{[]string{"run", ""}, []string{"shop/nightly"}},
		{[]string{"run", "--app", "shop", ""}, []string{"nightly"}},
		{[]string{"history", "shop", ""}, nil},
	} {
		out, err := run(t, append([]string{"__complete", "--config", cfg}, tt.args...)...)
		// The choices come before cobra's directive line (":4").
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, ":") {
				break
			}
			got = append(got, l)
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("complete %v: %v, got %q, want %q:\n%s", tt.args, err, got, tt.want, out)
		}
	}
}

// createPod makes pod name of app shop (one container, web), bound to
// node unless it is empty.
func createPod(t *testing.T, c *client.Client, name, node string) *api.Pod {
	t.Helper()
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: name, App: "shop"}
	p.Spec.NodeName = node
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/hello:v1"}}
	if _, err := c.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// 'get all' said `unknown kind "all"`, and 'describe pods' wanted a
// name; kubectl users reach for both first. 'get all' lists what runs,
// kind after kind, each name as KIND/NAME; 'describe KIND' describes
// every object of the kind.
func TestGetAllAndDescribeKind(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createPod(t, c.Client, "web-1", "n1")
	createPod(t, c.Client, "web-2", "n1")
	svc := api.KindService.New().(*api.Service)
	svc.Metadata = api.ObjectMeta{Name: "web", App: "shop"}
	svc.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80}}
	if _, err := c.Client.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args      []string
		stdout    []string
		stderr    string
		notStdout string
		wantUsage bool
	}{
		{args: []string{"get", "all", "--app", "shop"}, stdout: []string{"pod/web-1", "pod/web-2", "ContainerCreating", "\n\nNAME", "service/web "}},
		{args: []string{"get", "all", "-o", "name"}, stdout: []string{"pod/shop/web-1\n", "pod/shop/web-2\n", "service/shop/web\n"}},
		{args: []string{"get", "all", "-o", "json"}, stdout: []string{`"kind": "List"`, `"name": "web-2"`, `"kind": "Service"`}},
		{args: []string{"get", "all", "-l", "nope=1"}, stderr: "No workloads, pods, services or jobs found with labels nope=1.", notStdout: "web"},
		{args: []string{"get", "all", "--app", "nope"}, stderr: "there is no app nope"},
		{args: []string{"get", "all", "web-1"}, wantUsage: true},
		{args: []string{"get", "all", "-w"}, wantUsage: true},
		{args: []string{"describe", "pods", "--app", "shop"}, stdout: []string{"web-1", "web-2", "image: example/hello:v1", "Events:"}},
		{args: []string{"describe", "pods", "--app", "nope"}, stderr: "No pods found: there is no app nope"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, errOut, err := runSplit(t, append(tt.args, "--config", cfg)...)
			if tt.wantUsage {
				if err == nil {
					t.Fatalf("succeeded:\n%s", out)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s%s", err, out, errOut)
			}
			for _, w := range tt.stdout {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut)
			}
			if tt.notStdout != "" && strings.Contains(out, tt.notStdout) {
				t.Errorf("stdout has %q:\n%s", tt.notStdout, out)
			}
		})
	}
}

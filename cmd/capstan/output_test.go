package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
)

// An empty list printed "No pods found." on stdout, among the data a pipe
// or a file gets (kubectl says "No resources found" on stderr), and a
// misspelt --app listed nothing as an app without pods does. The message
// is on stderr now, names the app, and says when there is no such app.
func TestGetEmptyList(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createApp(t, c.Client, "shop")
	checkOutputs(t, cfg, []outputCase{
		{[]string{"get", "pods"}, "", "No pods found.\n"},
		{[]string{"get", "pods", "-o", "wide"}, "", "No pods found.\n"},
		{[]string{"get", "nodes"}, "", "No nodes found.\n"},
		{[]string{"get", "pods", "--app", "shop"}, "", "No pods found in app shop.\n"},
		{[]string{"get", "svc", "--app", "shpo"}, "", "No services found: there is no app shpo ('capstan get apps' lists the apps).\n"},
		{[]string{"get", "pods", "--app", "shop", "-o", "json"}, "{\n  \"items\": [],\n  \"kind\": \"List\"\n}\n", ""},
		{[]string{"get", "pods", "-o", "yaml"}, "items: []\nkind: List\n", ""},
	})
}

// get had no -o name, which kubectl users script with ("get pods -o name |
// xargs ..."): it prints each object as capstan's commands take it, one a
// line (APP/NAME, an app or a node by its name), and nothing else.
func TestGetOutputName(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createApp(t, c.Client, "shop")
	createPod(t, c.Client, "web-1", "")
	createPod(t, c.Client, "web-2", "")
	checkOutputs(t, cfg, []outputCase{
		{[]string{"get", "pods", "-o", "name"}, "shop/web-1\nshop/web-2\n", ""},
		{[]string{"get", "po", "--app", "shop", "-o", "name"}, "shop/web-1\nshop/web-2\n", ""},
		{[]string{"get", "pod", "shop/web-2", "-o", "name"}, "shop/web-2\n", ""},
		{[]string{"get", "apps", "-o", "name"}, "shop\n", ""},
		{[]string{"get", "svc", "-o", "name"}, "", "No services found.\n"},
	})
}

// get had no -l, with which kubectl users pick objects by label ("-l
// app=web"): it lists, and with -w watches, the objects with every label
// given; a bad selector is a usage error.
func TestGetSelector(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createApp(t, c.Client, "shop")
	labelled := func(name, group string) {
		t.Helper()
		p := api.KindPod.New().(*api.Pod)
		p.Metadata = api.ObjectMeta{Name: name, App: "shop", Labels: map[string]string{api.LabelWorkload: group}}
		p.Spec.Containers = []api.Container{{Name: "web", Image: "example/hello:v1"}}
		if _, err := c.Client.Create(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	labelled("web-1", "web")
	labelled("db-1", "db")
	checkOutputs(t, cfg, []outputCase{
		{[]string{"get", "pods", "-l", "capstan.io/workload=web", "-o", "name"}, "shop/web-1\n", ""},
		{[]string{"get", "pods", "--selector", "capstan.io/workload=db,capstan.io/workload2=x", "-o", "name"}, "", "No pods found with labels capstan.io/workload=db,capstan.io/workload2=x.\n"},
	})
	for _, bad := range [][]string{{"get", "pods", "-l", "web"}, {"get", "pod", "shop/web-1", "-l", "a=b"}} {
		if _, err := run(t, append(bad, "--config", cfg)...); exitCode(err) != usageExit {
			t.Errorf("%v: %v (exit %d), want a usage error", bad, err, exitCode(err))
		}
	}
	out, done := startWatch(t, "get", "pods", "-l", "capstan.io/workload=web", "-w", "-o", "name", "--config", cfg)
	waitOutput(t, out, done, "shop/web-1")
	labelled("db-2", "db")
	labelled("web-2", "web")
	waitOutput(t, out, done, "shop/web-2")
	if strings.Contains(out.String(), "db-") {
		t.Errorf("the watch printed a pod the selector leaves out:\n%s", out.String())
	}
}

// outputCase is a command line and what it should print on stdout and
// stderr (and succeed).
type outputCase struct {
	args             []string
	wantOut, wantErr string
}

// checkOutputs runs each case with --config cfg.
func checkOutputs(t *testing.T, cfg string, cases []outputCase) {
	t.Helper()
	for _, tt := range cases {
		out, errOut, err := runSplit(t, append(tt.args, "--config", cfg)...)
		if err != nil || out != tt.wantOut || errOut != tt.wantErr {
			t.Errorf("%v: %v\nstdout %q, want %q\nstderr %q, want %q", tt.args, err, out, tt.wantOut, errOut, tt.wantErr)
		}
	}
}

// runSplit is run with stdout and stderr apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// Deleting an object that came from git printed "apps/shop/shop deleted"
// alone: nothing said that the app's workloads, services and pods went
// with it, nor that sync makes it again (a workload or service the app
// controller remakes at once, with new pods or a new VIP). A note on
// stderr says so and what to change instead; other objects get none.
func TestDeleteFromGitNote(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	ctx := context.Background()
	a := api.KindApp.New().(*api.App)
	a.Metadata = api.ObjectMeta{Name: "shop", App: "shop", Source: &api.Source{Repo: "https://git.example/deploy", Commit: "ae9ad96c01f3", Path: "shop.cue", Line: 8}}
	created, err := c.Client.Create(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	owner := &api.OwnerRef{Kind: api.KindApp, Name: "shop", UID: created.Meta().UID}
	s := api.KindService.New().(*api.Service)
	s.Metadata = api.ObjectMeta{Name: "web", App: "shop", Owner: owner, Source: a.Metadata.Source}
	s.Spec.Ports = []api.ServicePort{{Name: "http", Port: 80}}
	if _, err := c.Client.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	// A pod carries its workload's source: its workload replaces it.
	p := api.KindPod.New().(*api.Pod)
	p.Metadata = api.ObjectMeta{Name: "web-1", App: "shop", Source: a.Metadata.Source, Owner: &api.OwnerRef{Kind: api.KindWorkload, Name: "web", UID: "u1"}}
	p.Spec.Containers = []api.Container{{Name: "web", Image: "example/hello:v1"}}
	if _, err := c.Client.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"delete", "pod", "shop/web-1"}, ""},
		{[]string{"delete", "svc", "shop/web"}, "note: service shop/web comes from git, through app shop: the app controller makes it again at once, with a new VIP and node ports. To change or remove it, change the app in the repository.\n"},
		{[]string{"delete", "app", "shop"}, "note: app shop comes from git (shop.cue:8 in repository https://git.example/deploy): its workloads, services and pods are deleted with it, and the next sync of its repository makes it again ('capstan sync' does it now). To remove the app, delete it from the repository.\n"},
	} {
		out, errOut, err := runSplit(t, append(tt.args, "--config", cfg)...)
		if err != nil || !strings.HasSuffix(out, " deleted\n") || errOut != tt.wantErr {
			t.Errorf("%v: %v\nstdout %q\nstderr %q, want %q", tt.args, err, out, errOut, tt.wantErr)
		}
	}
}

// --server HOST:PORT was refused ("client config: server ...: want
// https://HOST:PORT", exit 1); it is https://HOST:PORT, as kubectl reads
// it.
func TestServerFlagWithoutScheme(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	hostPort := strings.TrimPrefix(c.Config.URLs()[0], "https://")
	if out, err := run(t, "get", "nodes", "--server", hostPort, "--config", c.Server.AdminConfigPath()); err != nil || !strings.Contains(out, "No nodes found.") {
		t.Errorf("get nodes --server %s: %v\n%s", hostPort, err, out)
	}
}

// FuzzKindName: a first argument KIND/NAME is split only when KIND is a
// kind (or a Kubernetes one), and the split keeps every byte: KIND, "/", NAME.
func FuzzKindName(f *testing.F) {
	for _, s := range []string{"pod/shop/web-1", "po/web-1", "app/shop", "Pods/x", "shop/web-1", "/", "pod/", "deploy/x", ""} {
		f.Add(s, "extra")
	}
	f.Fuzz(func(t *testing.T, first, second string) {
		in := []string{first, second}
		out := kindName(slices.Clone(in))
		switch len(out) {
		case 2:
			if !slices.Equal(out, in) {
				t.Errorf("kindName(%q) = %q", in, out)
			}
		case 3:
			if !isKindName(out[0]) || out[0]+"/"+out[1] != first || out[2] != second {
				t.Errorf("kindName(%q) = %q", in, out)
			}
		default:
			t.Errorf("kindName(%q) = %q", in, out)
		}
	})
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/apiserver/client"
)

func createEvent(t *testing.T, c *client.Client, name string, obj api.ObjectRef, typ, reason string) {
	t.Helper()
	e := api.KindEvent.New().(*api.Event)
	now := time.Now()
	e.Metadata = api.ObjectMeta{Name: name, App: obj.App}
	e.Spec = api.EventSpec{Object: obj, Type: typ, Reason: reason, Message: "msg " + reason, Reporter: "agent/n1", Count: 1, FirstSeen: now, LastSeen: now}
	if _, err := c.Create(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

// kubectl users reach for 'kubectl events --for pod/web-1 --types=Warning'
// and 'kubectl get events --field-selector involvedObject.name=web-1';
// capstan get events took none of them ("unknown flag") and listed every
// event of every object.
func TestGetEventsFor(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	createApp(t, c.Client, "shop")
	web1 := api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1"}
	createEvent(t, c.Client, "web-1-a", web1, api.EventWarning, "BackOff")
	createEvent(t, c.Client, "web-1-b", web1, api.EventNormal, "Killing")
	createEvent(t, c.Client, "web-2-a", api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-2"}, api.EventWarning, "Unhealthy")
	createEvent(t, c.Client, "web-a", api.ObjectRef{Kind: api.KindWorkload, App: "shop", Name: "web-1"}, api.EventWarning, "RolloutStalled")
	for _, tt := range []struct {
		args       []string
		want, lack []string
	}{
		{[]string{"--for", "pod/shop/web-1"}, []string{"BackOff", "Killing", " pod/web-1 "}, []string{"Unhealthy", "RolloutStalled"}},
		{[]string{"--for", "po/web-1", "--app", "shop", "--types", "Warning"}, []string{"BackOff"}, []string{"Killing", "Unhealthy", "RolloutStalled"}},
		{[]string{"--types", "warning"}, []string{"BackOff", "Unhealthy", "RolloutStalled"}, []string{"Killing"}},
		{[]string{"--field-selector", "involvedObject.name=web-1,involvedObject.kind=Pod"}, []string{"BackOff", "Killing"}, []string{"Unhealthy", "RolloutStalled"}},
		{[]string{"--field-selector", "type!=Normal,reason=Unhealthy"}, []string{"Unhealthy"}, []string{"BackOff", "Killing", "RolloutStalled"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, err := run(t, append(append([]string{"get", "events"}, tt.args...), "--config", cfg)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, "LAST SEEN") || !strings.Contains(out, "TYPE") || !strings.Contains(out, "REASON") || !strings.Contains(out, "OBJECT") || !strings.Contains(out, "MESSAGE") {
				t.Errorf("no LAST SEEN, TYPE, REASON, OBJECT and MESSAGE columns:\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, l := range tt.lack {
				if strings.Contains(out, l) {
					t.Errorf("output shows %q:\n%s", l, out)
				}
			}
		})
	}
	// Nothing picked: said on stderr, naming the selection.
	if out, errOut, err := runSplit(t, "get", "events", "--app", "shop", "--for", "pod/nope", "--config", cfg); err != nil || out != "" ||
		!strings.Contains(errOut, "No events found in app shop for --for pod/nope.") {
		t.Errorf("no events for pod nope: %v, stdout %q, stderr %q", err, out, errOut)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "pods", "--for", "pod/shop/web-1"}, "these pick events, not pods"},
		{[]string{"get", "events", "--types", "Error"}, `event type "Error": want Normal or Warning`},
		{[]string{"get", "events", "--for", "pod/web-1"}, "give --app APP or APP/NAME"},
		{[]string{"get", "events", "--for", "deploy/shop/web"}, "workloads"},
		{[]string{"get", "events", "--field-selector", "spec.nodeName=n1"}, "events have involvedObject.kind"},
		{[]string{"get", "event", "shop/web-1-a", "--types", "Warning"}, "contradict"},
	} {
		if out, err := run(t, append(bad.args, "--config", cfg)...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%v: %v (%s), want an error saying %q", bad.args, err, out, bad.want)
		}
	}
}

// get events -w --for prints the changes of that object's events only.
func TestGetEventsWatchFor(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	createApp(t, c.Client, "shop")
	out, done := startWatch(t, "get", "events", "--app", "shop", "--for", "pod/web-1", "--types", "Warning", "-w", "--config", c.Server.AdminConfigPath())
	waitOutput(t, out, done, "No events found in app shop")
	createEvent(t, c.Client, "web-2-a", api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-2"}, api.EventWarning, "Unhealthy")
	createEvent(t, c.Client, "web-1-b", api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1"}, api.EventNormal, "Killing")
	createEvent(t, c.Client, "web-1-a", api.ObjectRef{Kind: api.KindPod, App: "shop", Name: "web-1"}, api.EventWarning, "BackOff")
	waitOutput(t, out, done, "BackOff")
	if text := out.String(); strings.Contains(text, "Unhealthy") || strings.Contains(text, "Killing") {
		t.Errorf("the watch shows another pod's or a Normal event:\n%s", text)
	}
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/apiservertest"
	"github.com/capstanhq/capstan/forge"
)

// `capstan history` shows a repository whose forge refuses the token (the
// forge component's ForgeError event) until a later ForgeConnected event.
func TestHistoryShowsForgeProblems(t *testing.T) {
	c := apiservertest.Start(t, apiservertest.Options{})
	cfg := c.Server.AdminConfigPath()
	now := time.Now()
	add := func(name, reason, msg string, at time.Time) {
		e := api.KindEvent.New().(*api.Event)
		e.Metadata = api.ObjectMeta{Name: name, App: "deploy"}
		e.Spec = api.EventSpec{Object: api.ObjectRef{Kind: api.KindApp, App: "deploy", Name: "deploy"}, Type: api.EventWarning,
			Reason: reason, Message: msg, Reporter: forge.Reporter, Count: 3, FirstSeen: at, LastSeen: at}
		if _, err := c.Client.Create(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	add("deploy-err", forge.ReasonForgeError, "github: list open pull requests (HTTP 401): forge refused the token: check the token in the repository's forge.tokenFile", now)
	out, err := run(t, "history", "--config", cfg)
	if err != nil || !strings.Contains(out, "FORGE repo:deploy: github: list open pull requests (HTTP 401)") || !strings.Contains(out, "forge.tokenFile") {
		t.Fatalf("history:\n%s\n%v", out, err)
	}
	add("deploy-ok", forge.ReasonForgeOK, "forge calls succeed again", now.Add(time.Second))
	if out, err := run(t, "history", "--config", cfg); err != nil || strings.Contains(out, "FORGE") {
		t.Fatalf("history after recovery:\n%s\n%v", out, err)
	}
}

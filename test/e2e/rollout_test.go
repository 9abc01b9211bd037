package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/capstanhq/capstan/apiserver/api"
)

// TestRolloutSurvivesServerSIGKILL: the server is SIGKILLed in the middle
// of a rolling update of 4 replicas (maxSurge 1, maxUnavailable 0), once
// the first pod of the new template exists. Started again on the same
// data, it carries on within the same bounds (sampled: never more than 5
// pods not being deleted, never fewer than 4 ready ones) and ends with 4
// pods, all of the new template: none left over, none missing.
func TestRolloutSurvivesServerSIGKILL(t *testing.T) {
	c := New(t, Options{Hosts: 1})
	c.DeployEcho(4)
	ctx := context.Background()
	var oldHash string
	c.waitFor("4 ready echo pods", 3*time.Minute, func() bool {
		pods := c.Pods()
		if len(pods) != 4 || len(ReadyPods(pods)[c.Hosts[0].Name]) != 4 {
			return false
		}
		oldHash = pods[0].Metadata.Labels[api.LabelTemplateHash]
		return true
	})
	key := api.Key{Kind: api.KindWorkload, App: EchoApp, Name: "echo"}
	if _, err := c.Admin.Modify(ctx, key, func(o api.Object) {
		w := o.(*api.Workload)
		w.Spec.Strategy.MaxSurge, w.Spec.Strategy.MaxUnavailable = api.FromInt(1), api.FromInt(0)
		w.Spec.Template.Containers[0].Env = append(w.Spec.Template.Containers[0].Env, api.EnvVar{Name: "VERSION", Value: "2"})
	}); err != nil {
		t.Fatal(err)
	}
	newPod := func(p *api.Pod) bool { return p.Metadata.Labels[api.LabelTemplateHash] != oldHash }
	c.waitFor("the first pod of the new template", time.Minute, func() bool {
		for _, p := range c.Pods() {
			if newPod(p) {
				return true
			}
		}
		return false
	})
	c.KillServer()

	maxLive, minReady := 0, 4
	var last []*api.Pod
	c.waitFor("the rollout to end with 4 new pods", 3*time.Minute, func() bool {
		pods := c.Pods()
		if pods == nil {
			return false
		}
		last = pods
		live, fresh := 0, 0
		for _, p := range pods {
			if p.Metadata.DeletionRequestedAt == nil {
				live++
			}
			if newPod(p) && p.Metadata.DeletionRequestedAt == nil {
				fresh++
			}
		}
		ready := len(ReadyPods(pods)[c.Hosts[0].Name])
		maxLive, minReady = max(maxLive, live), min(minReady, ready)
		return len(pods) == 4 && fresh == 4 && ready == 4
	})
	if maxLive > 5 || minReady < 4 {
		t.Errorf("during the rollout: up to %d pods not being deleted (want at most 5), down to %d ready (want at least 4)", maxLive, minReady)
	}
	if t.Failed() {
		var s []string
		for _, p := range last {
			s = append(s, fmt.Sprintf("%s %s %s deleting=%v", p.Metadata.Name, p.Metadata.Labels[api.LabelTemplateHash], p.Status.Phase, p.Metadata.DeletionRequestedAt != nil))
		}
		t.Logf("pods: %s", strings.Join(s, "; "))
	}
}

package app

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
)

// appInfo exports capstan_app_info: one series per App with its health
// and last sync result, read from the controller's cache at scrape time
// (as Argo CD's argocd_app_info), so that dashboards and alerts see what
// `capstan get apps` shows. Nothing is exported before the cache is
// filled (a server that does not lead).
type appInfo struct {
	apps *client.Informer
	desc *prometheus.Desc
}

func newAppInfo(apps *client.Informer) *appInfo {
	return &appInfo{apps: apps, desc: prometheus.NewDesc("capstan_app_info",
		"1 for each app, with its health (Healthy, Progressing, Degraded, Missing, Unknown) and its last sync result (Applied, Rejected, Failed, Held).",
		[]string{"app", "repo", "health", "sync"}, nil)}
}

func (m *appInfo) Describe(ch chan<- *prometheus.Desc) { ch <- m.desc }

func (m *appInfo) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-m.apps.Synced():
	default:
		return
	}
	for _, o := range m.apps.List() {
		a := o.(*api.App)
		repo := ""
		if a.Metadata.Source != nil {
			repo = a.Metadata.Source.Repo
		}
		health := a.Status.Health
		if health == "" {
			health = api.HealthUnknown
		}
		ch <- prometheus.MustNewConstMetric(m.desc, prometheus.GaugeValue, 1, a.Metadata.Name, repo, health, a.Status.LastSyncResult)
	}
}

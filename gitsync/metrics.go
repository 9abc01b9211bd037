package gitsync

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are a Syncer's Prometheus series, one set per repository, made
// at New so that an alert on a repository that never synced (no success
// yet) has a series to look at.
type metrics struct {
	syncs       *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	lastSuccess *prometheus.GaugeVec
	failing     *prometheus.GaugeVec
}

// Sync outcomes, the result label of capstan_gitsync_syncs_total.
const (
	resultApplied   = "applied"
	resultUnchanged = "unchanged"
	resultFailed    = "failed"
)

func newMetrics(reg prometheus.Registerer, repos []RepoConfig) (*metrics, error) {
	m := &metrics{
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_gitsync_syncs_total",
			Help: "Sync attempts by repository and result: applied (a new commit reached the cluster), unchanged, failed.",
		}, []string{"repo", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "capstan_gitsync_sync_duration_seconds",
			Help:    "Time one sync attempt took: fetch, signature check, evaluation and apply.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 8),
		}, []string{"repo"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_gitsync_last_success_timestamp_seconds",
			Help: "When the repository last synced without error (Unix time; 0: not since the server started).",
		}, []string{"repo"}),
		failing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_gitsync_failing",
			Help: "1 while the repository's last sync attempt failed (fetch, signature, a descriptor error or a held prune), else 0.",
		}, []string{"repo"}),
	}
	for _, rc := range repos {
		for _, r := range []string{resultApplied, resultUnchanged, resultFailed} {
			m.syncs.WithLabelValues(rc.Name, r)
		}
		m.duration.WithLabelValues(rc.Name)
		m.lastSuccess.WithLabelValues(rc.Name)
		m.failing.WithLabelValues(rc.Name)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.syncs, m.duration, m.lastSuccess, m.failing} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("gitsync: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe records one attempt of repo that took took.
func (m *metrics) observe(repo string, r Result, took time.Duration) {
	m.duration.WithLabelValues(repo).Observe(took.Seconds())
	switch {
	case r.Err != nil:
		m.syncs.WithLabelValues(repo, resultFailed).Inc()
		m.failing.WithLabelValues(repo).Set(1)
		return
	case r.Applied:
		m.syncs.WithLabelValues(repo, resultApplied).Inc()
	default:
		m.syncs.WithLabelValues(repo, resultUnchanged).Inc()
	}
	m.failing.WithLabelValues(repo).Set(0)
	m.lastSuccess.WithLabelValues(repo).Set(float64(r.At.UnixNano()) / 1e9)
}

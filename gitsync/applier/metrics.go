package applier

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics say what the last applied commit of each repository left
// refused: gitsync's own metrics count syncs that failed, but a commit
// whose descriptors are rejected app by app still syncs.
type metrics struct {
	rejected *prometheus.GaugeVec
	errors   *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer, repos map[string]string) (*metrics, error) {
	m := &metrics{
		rejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_gitsync_rejected_apps",
			Help: "Apps whose descriptor the repository's last applied commit rejects; each keeps running what it ran before (a new one runs nothing).",
		}, []string{"repo"}),
		errors: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_gitsync_repository_errors",
			Help: "Errors of the repository's last applied commit that belong to no one app (a file that does not parse, an app another repository owns); while there are any but the latter, nothing is pruned.",
		}, []string{"repo"}),
	}
	for name := range repos {
		m.rejected.WithLabelValues(name)
		m.errors.WithLabelValues(name)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rejected, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("applier: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe records what applying a commit of repo left refused.
func (m *metrics) observe(repo string, out Outcome) {
	m.rejected.WithLabelValues(repo).Set(float64(len(out.Rejected)))
	m.errors.WithLabelValues(repo).Set(float64(len(out.Errors)))
}

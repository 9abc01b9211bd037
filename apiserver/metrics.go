package apiserver

import (
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  *prometheus.GaugeVec
}

func newMetrics(reg *prometheus.Registry, st store.Store) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_api_requests_total", Help: "API requests by verb, kind and response code.",
		}, []string{"verb", "kind", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "capstan_api_request_duration_seconds", Help: "API request latency by verb and kind (watches excluded).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"verb", "kind"}),
		watches: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_api_watches", Help: "Open watch streams by kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.requests, m.latency, m.watches,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_store_revision", Help: "The store's current revision."},
			func() float64 { return float64(st.Revision()) }))
	return m
}

package apiserver

import (
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	watches        *prometheus.GaugeVec
	streams        *prometheus.GaugeVec
	streamsRefused *prometheus.CounterVec
	connsRefused   *prometheus.CounterVec
	unauthRefused  prometheus.Counter
	bodyTimeouts   prometheus.Counter
	eventsDropped  *prometheus.CounterVec
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
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "capstan_api_streams", Help: "Open watches, log streams and exec sessions by role (admin, viewer, node) and type.",
		}, []string{"role", "type"}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_api_streams_refused_total", Help: "Streams refused with 429 because their token held the most it may, by role and type.",
		}, []string{"role", "type"}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_api_connections_refused_total", Help: "Connections closed by the connection limit (limit: all taken; reserve: only the admins' and nodes' reserve left).",
		}, []string{"reason"}),
		unauthRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "capstan_api_unauthenticated_refused_total", Help: "Requests without credentials refused with 429 because the most allowed were in flight.",
		}),
		bodyTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "capstan_api_body_read_timeouts_total", Help: "Requests cut because their body did not arrive within the body read timeout.",
		}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "capstan_api_events_dropped_total", Help: "New events refused with 429 by the event limits, by limit (object: one source about one object; source: one source about all).",
		}, []string{"limit"}),
	}
	reg.MustRegister(m.requests, m.latency, m.watches, m.streams, m.streamsRefused, m.connsRefused, m.unauthRefused, m.bodyTimeouts, m.eventsDropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_store_revision", Help: "The store's current revision."},
			func() float64 { return float64(st.Revision()) }))
	return m
}

// registerConnMetrics exports the connection and request gauges of s.
func (s *Server) registerConnMetrics(reg *prometheus.Registry) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_api_connections", Help: "Open client connections.",
			ConstLabels: prometheus.Labels{"class": "all"}}, func() float64 { return float64(s.conns.open.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_api_connections", Help: "Open client connections.",
			ConstLabels: prometheus.Labels{"class": "privileged"}}, func() float64 { return float64(s.conns.privileged.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_api_connection_limit", Help: "The most open client connections the server keeps."},
			func() float64 { return float64(s.conns.max) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "capstan_api_unauthenticated_requests", Help: "Requests without credentials in flight."},
			func() float64 { return float64(len(s.unauth)) }),
	)
}

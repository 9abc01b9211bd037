package apiserver

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// routes registers every route the API server serves; this is the one
// place to read them. The resource API is served by ServeHTTP itself
// (serveAPI in handlers.go), which dispatches by method and path, so that
// paths are never cleaned or redirected:
//
//	GET    /api/v1/{kind}[?app=&labels=&node=]           list
//	GET    /api/v1/{kind}?watch=true&since=REV           watch (NDJSON)
//	POST   /api/v1/{kind}                                create
//	GET    /api/v1/{kind}/{app}/{name}                   get (cluster kinds: /api/v1/{kind}/{name})
//	PUT    /api/v1/{kind}/{app}/{name}[/status]          update (updateOp)
//	DELETE /api/v1/{kind}/{app}/{name}                   delete
//	GET    /api/v1/pods/{app}/{name}/log                 container log, from the pod's agent
//	POST   /api/v1/pods/{app}/{name}/exec                exec (upgrade), through the pod's agent
//	GET    /api/v1/secrets/{app}/{name}/values           a secret's opened values (admins; nodes whose pods use it)
//	POST   /api/v1/txn                                   transaction
//	GET    /backup                                       backup (tar; admins)
//	POST   /store/migrate                                copy the store into the other backend (admins)
//	GET    /store/read-only, PUT                         the store's read-only switch (admins)
//	GET    /secrets/recipient                            the cluster's age recipient (any valid token but a join token)
//
// Components that capstan server assembles add theirs with Handle or
// HandleAdmin (controlplane: git sync's POST /hooks/git/{repo} and POST
// /sync/{repo}).
func (s *Server) routes() {
	// Health and identity: no token needed.
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.mux.HandleFunc("GET /readyz", s.handleReadyz) // readiness.go
	s.mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.opts.Version) })
	metrics := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{})
	s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.authenticateMember(r); err != nil {
			writeError(w, err)
			return
		}
		metrics.ServeHTTP(w, r)
	})

	// Joining nodes (join.go).
	s.mux.HandleFunc("GET /cacert", s.handleCACert)
	s.mux.HandleFunc("POST /join", s.handleJoin)
	s.HandleAdmin("POST /rejoin/{node}", http.HandlerFunc(s.handleAllowRejoin))
	s.mux.HandleFunc("POST /nodecert/{node}", s.handleNodeCert)
	s.mux.HandleFunc("GET /clusterinfo", s.handleClusterInfo)
	s.mux.HandleFunc("GET "+wire.SecretsRecipientPath, s.handleSecretsRecipient)

	// Tokens (admins).
	s.HandleAdmin("GET /tokens", http.HandlerFunc(s.handleListTokens))
	s.HandleAdmin("POST /tokens", http.HandlerFunc(s.handleCreateToken))
	s.HandleAdmin("DELETE /tokens/{id}", http.HandlerFunc(s.handleRevokeToken))

	// Backups (admins; backup.go).
	s.HandleAdmin("GET "+wire.BackupPath, http.HandlerFunc(s.handleBackup))

	// The store's backend (admins; storeadmin.go).
	s.HandleAdmin("POST "+wire.StoreMigratePath, http.HandlerFunc(s.handleMigrate))
	s.HandleAdmin("GET "+wire.StoreReadOnlyPath, http.HandlerFunc(s.handleGetReadOnly))
	s.HandleAdmin("PUT "+wire.StoreReadOnlyPath, http.HandlerFunc(s.handleSetReadOnly))
}

package main

import (
	"time"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/spf13/pflag"
)

// apiLimits are the flags of `capstan server` that bound what one client
// may hold of the API server (apiserver.Options documents each).
type apiLimits struct {
	maxStreamsPerToken  int
	watchMaxLifetime    time.Duration
	maxConnections      int
	reservedConnections int
	maxUnauthenticated  int
	bodyReadTimeout     time.Duration
}

func (l *apiLimits) register(fs *pflag.FlagSet) {
	fs.IntVar(&l.maxStreamsPerToken, "max-streams-per-token", 64, "watches, log streams and exec sessions one token may hold open (admins: no limit); the next is answered 429")
	fs.DurationVar(&l.watchMaxLifetime, "watch-max-lifetime", 30*time.Minute, "a watch ends after between 3/4 of this and this; clients resume from their last revision")
	fs.IntVar(&l.maxConnections, "max-connections", 0, "most open client connections (0: 3/4 of the open-file limit, at most 10000)")
	fs.IntVar(&l.reservedConnections, "reserved-connections", 0, "connections of --max-connections kept for admins and nodes; viewers and clients without credentials get 503 past the rest (0: an eighth)")
	fs.IntVar(&l.maxUnauthenticated, "max-unauthenticated-requests", 64, "requests without valid credentials in flight (webhooks, joins); the next is answered 429")
	fs.DurationVar(&l.bodyReadTimeout, "body-read-timeout", 30*time.Second, "time a client has to send a request body; a slower one is cut (408)")
}

func (l apiLimits) apply(o *apiserver.Options) {
	o.MaxStreamsPerToken = l.maxStreamsPerToken
	o.WatchMaxLifetime = l.watchMaxLifetime
	o.MaxConnections = l.maxConnections
	o.ReservedConnections = l.reservedConnections
	o.MaxUnauthenticatedRequests = l.maxUnauthenticated
	o.BodyReadTimeout = l.bodyReadTimeout
}

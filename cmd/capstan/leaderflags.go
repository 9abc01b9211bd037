package main

import (
	"github.com/capstanhq/capstan/controlplane"
	"github.com/capstanhq/capstan/controlplane/leader"
	"github.com/spf13/pflag"
)

// leaderFlags tune the leader election of servers on one etcd
// (controlplane.LeaderOptions).
type leaderFlags struct{ opts controlplane.LeaderOptions }

func (f *leaderFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.opts.TTL, "leader-lease-ttl", leader.DefaultTTL, "with --store etcd: the leader's lease; after the leading server dies another takes over within about this long (whole seconds, at least 2s)")
	fs.StringVar(&f.opts.ID, "leader-id", "", "with --store etcd: this server's name in the leader election (default HOSTNAME-PID)")
}

func (f *leaderFlags) apply(o *controlplane.Options) { o.Leader = f.opts }

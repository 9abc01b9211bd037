package node

import (
	"context"

	"github.com/google/nftables"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/routes"
	"github.com/capstanhq/capstan/proxy"
)

// DownReport is what Down removed; a step that failed says why.
type DownReport struct {
	// Agent is what agent.Down removed: pods, bridge, run directory.
	Agent agent.DownReport
	// Proxy is the service proxy's nftables table; nil when removed (or
	// absent, or left with the bridge: Agent.Foreign).
	Proxy error
	// Routes are the routes to other nodes and the egress table; nil
	// when removed (or absent, or left with the bridge: Agent.Foreign).
	Routes error
	// ProxyTable and EgressTable say whether those tables were there to
	// remove (so a second down does not claim to remove them again).
	ProxyTable, EgressTable bool
}

// Down stops the node of the agent options o for good, after it has
// stopped: its pods, network and state (agent.Down, which refuses while
// the node runs), then the service proxy's table and the routes. The
// error is agent.Down's; the proxy's and routes' are in the report, and
// the other steps run regardless.
func Down(ctx context.Context, o agent.Options, purge bool) (DownReport, error) {
	var rep DownReport
	var err error
	if rep.Agent, err = agent.Down(ctx, o, purge); err != nil {
		return rep, err
	}
	if rep.Agent.Foreign != "" {
		// The bridge is another cluster's: so are the network
		// namespace's proxy table, egress table and routes.
		return rep, nil
	}
	have := ipTables(proxy.DefaultTable, routes.DefaultEgressTable)
	rep.ProxyTable, rep.EgressTable = have[proxy.DefaultTable], have[routes.DefaultEgressTable]
	p, err := proxy.New(proxy.Options{Logger: o.Logger})
	if err == nil {
		err = p.Cleanup(ctx)
	}
	rep.Proxy = err
	rep.Routes = routes.Cleanup(routes.Options{Logger: o.Logger})
	return rep, nil
}

// ipTables reports which of names are nftables tables of family ip in
// this network namespace; when they cannot be listed, every one counts as
// there.
func ipTables(names ...string) map[string]bool {
	have := map[string]bool{}
	var ts []*nftables.Table
	c, err := nftables.New()
	if err == nil {
		ts, err = c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	}
	for _, n := range names {
		have[n] = err != nil
	}
	for _, t := range ts {
		if _, ok := have[t.Name]; ok {
			have[t.Name] = true
		}
	}
	return have
}

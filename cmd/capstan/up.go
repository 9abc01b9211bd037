package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/DeRuina/timberjack"
	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/identity"
	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/client"
	"github.com/capstanhq/capstan/controlplane"
	"github.com/capstanhq/capstan/dns"
	"github.com/capstanhq/capstan/examples/demo"
	"github.com/capstanhq/capstan/examples/repo"
	"github.com/capstanhq/capstan/node"
	"github.com/capstanhq/capstan/printer"
	"github.com/capstanhq/capstan/registry"
	"github.com/capstanhq/capstan/secrets"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// upFlags are the flags of `capstan up`.
type upFlags struct {
	server     serverFlags
	images     string
	noAgent    bool
	nodeName   string
	containerd string
	dnsAddr    string
	runDir     string
	hostPorts  bool
}

func (f *upFlags) register(cmd *cobra.Command) {
	f.server.register(cmd)
	fl := cmd.Flags()
	// The server's registry is off by default; up's is on: its usage
	// must not say "default: off" beside the default up shows.
	ra := fl.Lookup("registry-addr")
	ra.DefValue = "[" + registry.DefaultAddr + "]"
	ra.Usage = strings.Replace(ra.Usage, "(default: off; repeatable)", "(repeatable)", 1)
	f.server.registryAddrs = []string{registry.DefaultAddr}
	fl.StringVar(&f.images, "images", "", "directory of image tarballs (capstan image pack -o) to push into the registry; 'make up' builds bin/images")
	fl.BoolVar(&f.noAgent, "no-agent", false, "run no agent, proxy or DNS (no root needed); nodes join with 'capstan agent'")
	fl.StringVar(&f.nodeName, "node-name", "", "name of this node (default: the host name)")
	fl.StringVar(&f.containerd, "containerd-address", "", "containerd socket to use (default: start a containerd child under DATA_DIR/agent/containerd)")
	fl.StringVar(&f.runDir, "run-dir", "", "directory for the pods' namespace files and runc state, on a tmpfs (default: /run/capstan for the default --data-dir, else /run/capstan-HASH of DATA_DIR/agent)")
	fl.StringVar(&f.dnsAddr, "dns-addr", "", `cluster DNS address, ip:port (default: this host's IPv4 address on port 53; "off" for none)`)
	fl.BoolVar(&f.hostPorts, "host-ports", false, "let containers publish host ports (CNI portmap; needs iptables), as 'capstan agent --host-ports'")
}

func newUpCmd() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole cluster in one process: server, registry, agent, proxy and DNS",
		Long: `Run a one-node cluster on embedded defaults: the store, API server, git sync,
controllers and scheduler; the registry on 127.0.0.1:5000; this machine's
agent (containerd, CNI), service proxy (nftables) and cluster DNS.

Without --repo it makes a demo git repository from the example app in
DATA_DIR/demo-repo and tracks it: commit there to change the cluster. With
--images it pushes the image tarballs of that directory (skipping those the
registry already has). It prints one line per step, then what to try.

Ctrl-C stops everything; running 'capstan up' again resumes the same cluster
(the store, registry, demo repository and containers are all kept in
DATA_DIR). Needs root unless --no-agent; see docs/up.md.`,
		Example: `  sudo make up                                # from a checkout: packages, build, example images, then capstan up
  sudo capstan up --images bin/images         # the demo repository and the example images
  sudo capstan up --repo https://git.example.com/you/deploy.git --branch main --path apps
  capstan up --no-agent --data-dir /tmp/capstan --listen 127.0.0.1:7444 --registry-addr 127.0.0.1:5001`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runUp(cmd.Context(), f, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f.register(cmd)
	cmd.Flags().Lookup("data-dir").Usage = "directory for the store, registry, demo repository, agent and admin.yaml"
	return cmd
}

// progress prints the step lines of `capstan up`.
type progress struct{ w io.Writer }

func (p progress) ok(format string, args ...any) { fmt.Fprintf(p.w, "✓ "+format+"\n", args...) }
func (p progress) warn(format string, args ...any) {
	fmt.Fprintf(p.w, "! "+format+"\n", args...)
}

// runUp runs everything until ctx ends (Ctrl-C) or a part fails.
func runUp(ctx context.Context, f upFlags, out, errOut io.Writer) error {
	p := progress{out}
	dataDir, err := filepath.Abs(f.server.dataDir)
	if err != nil {
		return err
	}
	f.server.dataDir = dataDir
	if f.runDir != "" {
		if f.runDir, err = filepath.Abs(f.runDir); err != nil {
			return err
		}
	}
	if _, _, err := node.ParseDNSAddr(f.dnsAddr, netip.IPv4Unspecified(), false); err != nil && !f.noAgent {
		return err // before anything starts
	}
	if err := needRoot(os.Geteuid(), f.noAgent); err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w (pick another with --data-dir)", dataDir, err)
	}
	log, closeLog, err := upLogger(f.server, dataDir, errOut)
	if err != nil {
		return err
	}
	defer closeLog()
	logsAt := filepath.Join(dataDir, upLogFile)
	if f.server.verbose {
		logsAt += " and stderr"
	}
	p.ok("data directory %s (logs in %s)", dataDir, logsAt)

	if len(f.server.registryAddrs) == 0 {
		return errors.New("capstan up needs a registry: give --registry-addr (default " + registry.DefaultAddr + ")")
	}
	demoDir := ""
	if len(f.server.git.repos) == 0 && f.server.git.config == "" {
		// Made once the registry's address is known, before anything runs.
		demoDir = filepath.Join(dataDir, "demo-repo")
		f.server.git.repos = []string{demoDir}
		f.server.git.branch, f.server.git.path = demo.Branch, "."
	}

	cp, err := newControlPlane(f.server, log)
	if err != nil {
		return err
	}
	defer cp.Close()
	if demoDir != "" {
		// The demo's images name the registry as the first --registry-addr.
		imagesAt := upImageRegistry(f.server.registryAddrs[0], cp.Registry())
		keys, err := secrets.LoadOrCreate(filepath.Join(dataDir, "secrets")) // made by the server on its first start
		if err != nil {
			return err
		}
		res, err := demo.Repo(demoDir, repo.FS(), imagesAt, keys.Recipient())
		if err != nil {
			return err
		}
		how := "kept from the last run"
		if res.Created {
			how = "created from examples/repo"
		}
		p.ok("demo repository %s at %s (%s), images at %s", res.Dir, api.ShortCommit(res.Head), how, imagesAt)
		if res.OtherRegistry {
			p.warn("the demo repository names no image at %s (made for another --registry-addr): edit its images or remove %s to make it again", imagesAt, res.Dir)
		}
	}
	admin, err := client.FromFile(cp.Server().AdminConfigPath())
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return cp.Start(gctx) })
	g.Go(func() error {
		err := upSteps(gctx, g, f, cp, admin, p, demoDir, log)
		if gctx.Err() != nil {
			return nil // the real cause comes from the part that failed
		}
		return err
	})
	err = g.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		fmt.Fprintf(out, "stopped; everything is kept in %s: run 'capstan up' again to resume\n", dataDir)
		return nil
	}
	return err
}

// needRoot refuses to run the agent without root.
func needRoot(euid int, noAgent bool) error {
	if noAgent || euid == 0 {
		return nil
	}
	return errors.New("capstan up runs containers and needs root: run 'sudo make up' (or sudo bin/capstan up), or pass --no-agent for the control plane alone")
}

// upSteps waits for each part in turn, starts the node side once the
// control plane and registry answer, and prints a line per step.
func upSteps(ctx context.Context, g *errgroup.Group, f upFlags, cp *controlplane.ControlPlane, admin *client.Client, p progress, demoDir string, log *slog.Logger) error {
	if err := pollUntil(ctx, func() bool { return admin.Do(ctx, "GET", "/readyz", nil, nil) == nil }); err != nil {
		return err
	}
	p.ok("store ready at %s", filepath.Join(f.server.dataDir, "capstan.db"))
	srv, reg := cp.Server(), cp.Registry()
	p.ok("API server on %s", srv.URL())
	select {
	case <-reg.Ready():
	case <-ctx.Done():
		return ctx.Err()
	}
	regAddr := upImageRegistry(f.server.registryAddrs[0], reg)
	p.ok("registry on %s (images in %s; push credentials in %s)", strings.Join(reg.Addrs(), ", "), filepath.Join(f.server.dataDir, "registry"), srv.AdminConfigPath())
	if err := upImages(ctx, f.images, regAddr, reg.Pusher(srv.PKI().CAPEM), p); err != nil {
		return err
	}
	if !f.noAgent {
		if err := startNode(ctx, g, f, cp, admin, p, log); err != nil {
			return err
		}
	}
	if len(f.server.git.repos) > 0 || f.server.git.config != "" {
		// A sync usually lands within a second; past the wait, the hint
		// below still tells where to look.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		apps := waitSynced(wctx, admin)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if len(apps) == 0 {
			p.warn("no app synced yet: see 'capstan history' and %s", filepath.Join(f.server.dataDir, upLogFile))
		}
		for _, a := range apps {
			if a.Status.LastSyncResult == api.SyncApplied || a.Status.SyncedCommit != "" {
				p.ok("app %s synced at commit %s", a.Metadata.Name, api.ShortCommit(a.Status.SyncedCommit))
			} else {
				p.warn("app %s: commit %s %s: %s", a.Metadata.Name, api.ShortCommit(a.Status.AttemptedCommit), strings.ToLower(a.Status.LastSyncResult), a.Status.LastSyncMessage)
			}
		}
	}
	var urls []nodePortURL
	if !f.noAgent {
		urls = nodePortURLs(ctx, admin)
	}
	nextSteps(p.w, f.server.dataDir, srv.AdminConfigPath(), demoDir, urls)
	return nil
}

// upImageRegistry is the address, as the registry listens on it, of the
// configured address first: the one the demo's images name.
func upImageRegistry(first string, cr *controlplane.Registry) string {
	if registry.IsLoopbackAddr(first) {
		return cr.Plain()[0]
	}
	return cr.TLS()[0]
}

// nodePortURL is where one node port answers.
type nodePortURL struct{ url, service string }

// nodePortURLs lists where the node ports of the external services
// answer: on the node's address, never on 127.0.0.1. It waits a few
// seconds for the app controller to make the services of the apps just
// synced.
func nodePortURLs(ctx context.Context, c *client.Client) []nodePortURL {
	var urls []nodePortURL
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	pollUntil(wctx, func() bool {
		svcs, _, err := c.List(wctx, api.KindService, client.ListOptions{})
		if err != nil || len(svcs) == 0 {
			return false
		}
		nodes, _, err := c.List(wctx, api.KindNode, client.ListOptions{})
		if err != nil {
			return false
		}
		ns := make([]*api.Node, 0, len(nodes))
		for _, n := range nodes {
			ns = append(ns, n.(*api.Node))
		}
		addr := printer.NodeAddress(ns)
		if addr == "" {
			return false
		}
		urls = urls[:0]
		for _, o := range svcs {
			s := o.(*api.Service)
			for _, p := range s.Spec.Ports {
				if p.NodePort != 0 {
					urls = append(urls, nodePortURL{"http://" + net.JoinHostPort(addr, strconv.Itoa(int(p.NodePort))) + "/", s.Metadata.App + "/" + s.Metadata.Name})
				}
			}
		}
		return true
	})
	return urls
}

// upImages pushes the image tarballs, or reports what the registry holds.
func upImages(ctx context.Context, dir, addr string, o registry.RemoteOptions, p progress) error {
	if dir == "" {
		repos, err := registry.List(ctx, addr, o)
		if err != nil {
			return err
		}
		if len(repos) == 0 {
			p.warn("the registry holds no images: pass --images DIR ('make up' builds bin/images) or push with 'capstan image pack --push'")
			return nil
		}
		p.ok("images: the registry holds %d repositories (%s)", len(repos), repoNames(repos))
		return nil
	}
	imgs, err := demo.PushImages(ctx, dir, addr, o)
	if err != nil {
		return err
	}
	var pushed, kept []string
	for _, im := range imgs {
		ref := strings.TrimPrefix(im.Ref, addr+"/")
		if im.Pushed {
			pushed = append(pushed, ref)
		} else {
			kept = append(kept, ref)
		}
	}
	switch {
	case len(pushed) == 0:
		p.ok("images already in the registry: %s", strings.Join(kept, ", "))
	case len(kept) == 0:
		p.ok("images pushed: %s", strings.Join(pushed, ", "))
	default:
		p.ok("images pushed: %s (already there: %s)", strings.Join(pushed, ", "), strings.Join(kept, ", "))
	}
	return nil
}

func repoNames(repos []registry.Repository) string {
	names := make([]string, 0, len(repos))
	for _, r := range repos {
		names = append(names, r.Name)
	}
	return strings.Join(names, ", ")
}

// startNode starts this machine's node (the agent, the proxy, the DNS
// server and their feeder) in g, and waits until the services are fed and
// the node is Ready.
func startNode(ctx context.Context, g *errgroup.Group, f upFlags, cp *controlplane.ControlPlane, admin *client.Client, p progress, log *slog.Logger) error {
	id, err := identity.Resolve(identity.Options{Name: f.nodeName})
	switch {
	case errors.Is(err, identity.ErrNoName):
		return fmt.Errorf("%w (pass --node-name)", err)
	case err != nil:
		return fmt.Errorf("%w (capstan up needs a default route)", err)
	}
	// The agent must act as its node: only a node finishes a graceful pod
	// delete (an admin's delete only marks the pod).
	nodeClient, err := cp.NodeClient(ctx, id.Name, time.Now())
	if err != nil {
		return err
	}
	srv, reg := cp.Server(), cp.Registry()
	n, err := node.New(node.Options{
		Agent: f.agentOptions(agent.Options{
			Client: nodeClient, NodeName: id.Name, Address: id.Address.String(),
			Logger:             log.With("component", "agent"),
			ServerCA:           string(srv.PKI().CAPEM),
			InsecureRegistries: reg.AgentInsecure(),
			RegistryCA:         string(srv.PKI().CAPEM),
			RegistryLogins:     reg.NodeLogins(),
		}),
		Services:       true,
		ServicesClient: admin,
		DNSAddr:        f.dnsAddr,
		Logger:         log,
	})
	if err != nil {
		return err
	}
	g.Go(func() error { return upNodeError(n.Start(ctx)) })
	if err := n.WaitServices(ctx); err != nil {
		return err
	}
	if addrs := n.DNSAddrs(); len(addrs) > 0 {
		p.ok("cluster DNS on %s (zone %s)", addrs[0], dns.DefaultZone)
	}
	p.ok("service proxy: nftables table ip capstan")
	for _, w := range node.SysctlWarnings("") {
		p.warn("%s", w)
	}
	name := n.Name()
	if err := pollUntil(ctx, func() bool { return nodeReady(ctx, admin, name) }); err != nil {
		return err
	}
	p.ok("agent: node %s Ready (containerd, CNI bridge)", name)
	return nil
}

// agentOptions sets in o what the flags of up say about the agent.
func (f upFlags) agentOptions(o agent.Options) agent.Options {
	o.DataDir = filepath.Join(f.server.dataDir, "agent")
	o.RunDir = f.runDir
	o.ContainerdAddress = f.containerd
	o.HostPorts = f.hostPorts
	return o
}

// upNodeError adds what to do when a port of the node side is taken: the
// agent's (10250 on the host's address) by another cluster's node on this
// network namespace, which capstan up cannot move, or DNS's port 53.
func upNodeError(err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%w\na port of this machine's node is taken: by another 'capstan up' or 'capstan agent' on this network namespace (stop it, or run this cluster in a network namespace of its own: see 'Two clusters on one machine' in docs/up.md), or, for port 53, by another DNS server (pass --dns-addr off, or another address of this host)", err)
}

func nodeReady(ctx context.Context, c *client.Client, name string) bool {
	obj, err := c.Get(ctx, api.Key{Kind: api.KindNode, Name: name})
	if err != nil {
		return false
	}
	cond := api.FindCondition(obj.(*api.Node).Status.Conditions, api.NodeReady)
	return cond != nil && cond.Status == api.ConditionTrue
}

// waitSynced waits until every app has a sync result, and at least one app
// exists, or ctx ends; it returns the apps seen last.
func waitSynced(ctx context.Context, c *client.Client) []*api.App {
	var apps []*api.App
	pollUntil(ctx, func() bool {
		objs, _, err := c.List(ctx, api.KindApp, client.ListOptions{})
		if err != nil || len(objs) == 0 {
			return false
		}
		apps = apps[:0]
		for _, o := range objs {
			a := o.(*api.App)
			if a.Status.LastSyncResult == "" {
				return false
			}
			apps = append(apps, a)
		}
		return true
	})
	return apps
}

// pollUntil checks cond every 50ms until it holds or ctx ends.
func pollUntil(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// nextSteps tells a newcomer what to try.
func nextSteps(w io.Writer, dataDir, adminConfig, demoDir string, urls []nodePortURL) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCapstan is up. The CLI's config is %s:\n", adminConfig)
	fmt.Fprintf(&b, "  export CAPSTAN_CONFIG=%s\n", adminConfig)
	for _, u := range urls {
		fmt.Fprintf(&b, "  curl %-29s # node port of %s, on this host's address (not 127.0.0.1)\n", u.url, u.service)
	}
	b.WriteString("  capstan get pods -A                 # the pods, their nodes and IPs\n")
	b.WriteString("  capstan logs shop/POD -f            # a container's log\n")
	b.WriteString("  capstan rollout status shop -w      # follow a rollout\n")
	b.WriteString("  capstan history shop                # every commit git sync looked at\n")
	if demoDir != "" {
		fmt.Fprintf(&b, "Change the cluster by committing to the demo repository:\n")
		fmt.Fprintf(&b, "  cd %s\n", demoDir)
		b.WriteString("  $EDITOR shop.cue                    # e.g. frontend replicas: 3 -> 5, or image hello:v1 -> v2\n")
		b.WriteString("  git commit -am 'scale the frontend'\n")
		b.WriteString("  capstan rollout status shop -w\n")
		b.WriteString("A commit that does not validate is refused with file:line; 'git revert' rolls back.\n")
	}
	fmt.Fprintf(&b, "Ctrl-C stops everything; 'capstan up' again resumes this cluster from %s.\n", dataDir)
	fmt.Fprintf(&b, "'capstan down --data-dir %s' stops its pods for good (--purge also removes the data).\n", dataDir)
	io.WriteString(w, b.String())
}

// upLogger writes logs to DATA_DIR/capstan.log, rotated (upLogMaxMiB),
// at info level; with -v at debug level, to the file and to stderr, so
// the terminal shows the steps and the file still holds what was shown.
func upLogger(f serverFlags, dataDir string, errOut io.Writer) (*slog.Logger, func(), error) {
	file, err := openUpLog(dataDir, logRotation{maxMiB: upLogMaxMiB, keep: upLogKeep})
	if err != nil {
		return nil, nil, err
	}
	handler := func(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
		if f.logJSON {
			return slog.NewJSONHandler(w, opts)
		}
		return slog.NewTextHandler(w, opts)
	}
	h := handler(file, nil)
	if f.verbose {
		opts := &slog.HandlerOptions{Level: slog.LevelDebug}
		h = slog.NewMultiHandler(handler(file, opts), handler(errOut, opts))
	}
	return slog.New(h), func() { file.Close() }, nil
}

// upLogFile is capstan up's log, in its data directory.
const upLogFile = "capstan.log"

// logRotation bounds a log file: once a write would take it past maxMiB
// it is renamed NAME-TIME-size.ext (TIME in UTC) and a new one started;
// the keep newest renamed files stay, uncompressed: grep and tail read
// them, and no gzip runs in the background after a rotation, for a few
// tens of MiB more on disk.
type logRotation struct{ maxMiB, keep int }

// capstan up's log takes at most 60 MiB: capstan.log and five rotated
// files of 10 MiB (kubelet keeps a container's log in 5 files of 10 MiB).
const upLogMaxMiB, upLogKeep = 10, 5

// openUpLog opens (appending) DATA_DIR/capstan.log, rotated by r. The
// first write fails, not the open, if the file cannot be opened; so open
// it now, for an error at start-up. timberjack is lumberjack's maintained
// fork: lumberjack's Close leaves the goroutine that removes old files
// running, timberjack's stops it; and a line written after Close is
// appended with an open and close of its own, so nothing of the log
// outlives capstan up.
func openUpLog(dataDir string, r logRotation) (*timberjack.Logger, error) {
	l := &timberjack.Logger{Filename: filepath.Join(dataDir, upLogFile), MaxSize: r.maxMiB, MaxBackups: r.keep, FileMode: 0o600}
	err := renameLumberjackLogs(dataDir)
	if err == nil {
		_, err = l.Write(nil)
	}
	if err != nil {
		return nil, fmt.Errorf("log file: %w (make it a file capstan up can write, or pick another --data-dir)", err)
	}
	return l, nil
}

// lumberjackLog is a capstan.log an older capstan up rotated, with
// lumberjack: capstan-TIME.log.
var lumberjackLog = regexp.MustCompile(`^capstan-(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3})\.log$`)

// renameLumberjackLogs gives the files an older capstan up rotated the
// name timberjack gives them (capstan-TIME-size.log), so that they count
// among the rotated files kept, and go when newer ones come.
func renameLumberjackLogs(dataDir string) error {
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		m := lumberjackLog.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() {
			continue
		}
		if err := os.Rename(filepath.Join(dataDir, e.Name()), filepath.Join(dataDir, "capstan-"+m[1]+"-size.log")); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/capstanhq/capstan/agent"
	"github.com/capstanhq/capstan/agent/routes"
	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/node"
)

// downFlags are the flags of `capstan down`.
type downFlags struct {
	dataDir, agentDataDir string
	opts                  agent.Options
	purge                 bool
	logFlags
}

func newDownCmd() *cobra.Command {
	var f downFlags
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop this machine's node for good: its pods, network and state",
		Long: `Stop the cluster's node on this machine for good, after 'capstan up' or
'capstan agent' has stopped (Ctrl-C leaves the containers running). It
stops every pod of the agent's containerd namespace (SIGTERM, then SIGKILL
after 10 s) and removes their containers, runc state, network namespaces
and addresses; then the CNI bridge, the service proxy's nftables table,
the routes to other nodes and the egress table, the run directory and the
containers' cgroups. With --purge it also removes the images and the data
directory, so nothing of the cluster is left. Running it again finds
nothing to do. Needs root.`,
		Example: `  sudo capstan down                           # after Ctrl-C of 'capstan up': pods, bridge, nftables table, run directory
  sudo capstan down --purge                   # and the data directory: nothing of the cluster is left
  sudo capstan down --data-dir /tmp/capstan   # the cluster of 'capstan up --data-dir /tmp/capstan'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDown(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "the cluster's data directory, as given to 'capstan up' or 'capstan server'")
	fl.StringVar(&f.agentDataDir, "agent-data-dir", "", "the agent's data directory (default DATA_DIR/agent, where 'capstan up' keeps it and where 'capstan agent' does by default)")
	fl.StringVar(&f.opts.RunDir, "run-dir", "", "the agent's run directory (default: derived from the agent's data directory, as the agent does)")
	fl.StringVar(&f.opts.ContainerdAddress, "containerd-address", "", "the containerd socket the agent used (default: its own containerd under the agent's data directory, started for the while)")
	fl.StringVar(&f.opts.ContainerdNamespace, "containerd-namespace", agent.DefaultNamespace, "the agent's containerd namespace")
	fl.StringVar(&f.opts.Bridge, "bridge", "", "the pods' bridge (default capstan0)")
	fl.StringVar(&f.opts.CgroupParent, "cgroup-parent", "", "the containers' parent cgroup (default /capstan)")
	fl.BoolVar(&f.purge, "purge", false, "also remove the images and the data directory (the store, registry, demo repository: the whole cluster)")
	f.logFlags.register(fl)
	return cmd
}

func runDown(cmd *cobra.Command, f downFlags) error {
	if os.Geteuid() != 0 {
		return errors.New("capstan down removes containers, namespaces and nftables tables and needs root: run it with sudo")
	}
	out := cmd.OutOrStdout()
	if f.dataDir == "" {
		return errors.New("--data-dir is empty (an unset variable?): give the cluster's data directory, or leave the flag out for /var/lib/capstan")
	}
	dataDir, err := filepath.Abs(f.dataDir)
	if err != nil {
		return err
	}
	f.opts.DataDir = filepath.Join(dataDir, "agent")
	if f.agentDataDir != "" {
		if f.opts.DataDir, err = filepath.Abs(f.agentDataDir); err != nil {
			return err
		}
	}
	if f.opts.RunDir != "" {
		if f.opts.RunDir, err = filepath.Abs(f.opts.RunDir); err != nil {
			return err
		}
	}
	if f.purge {
		if err := purgeable(dataDir); err != nil {
			return err
		}
		if err := serverStopped(dataDir); err != nil {
			return err
		}
	}
	runDir := f.opts.RunDir
	if runDir == "" {
		runDir = agent.RunDirFor(f.opts.DataDir)
	}
	if !exists(dataDir) && !exists(f.opts.DataDir) && !exists(runDir) {
		// Nothing of this cluster is here; the bridge and the nftables
		// tables, if any, belong to another.
		fmt.Fprintf(out, "nothing to do: no cluster at %s (nor %s, %s)\n", dataDir, f.opts.DataDir, runDir)
		return nil
	}
	// The lines below say what was done; the log on stderr is for
	// warnings (and everything with -v).
	f.opts.Logger = f.loggerAt(slog.LevelWarn)
	// The containerd that down starts makes the run directory again:
	// only one that was there before counts as found.
	hadRunDir := exists(runDir)
	rep, err := node.Down(cmd.Context(), f.opts, f.purge)
	if err != nil {
		return err
	}
	found := rep.Agent.Pods > 0 || rep.Agent.Bridge || rep.ProxyTable || rep.EgressTable || hadRunDir
	if rep.Agent.Pods > 0 {
		fmt.Fprintf(out, "✓ pods stopped and removed: %d (%d containers)\n", rep.Agent.Pods, rep.Agent.Containers)
	}
	if rep.Agent.Bridge {
		fmt.Fprintln(out, "✓ bridge removed")
	}
	var errs []error
	switch {
	case rep.Agent.Foreign != "":
		fmt.Fprintf(out, "! %s; left with the nftables tables ip capstan and ip %s and the routes of this network namespace, which belong to that cluster: 'capstan down --data-dir' of that cluster removes them\n", rep.Agent.Foreign, routes.DefaultEgressTable)
	case rep.Proxy != nil:
		errs = append(errs, rep.Proxy)
	case rep.ProxyTable:
		fmt.Fprintln(out, "✓ service proxy: nftables table ip capstan removed")
	}
	switch {
	case rep.Agent.Foreign != "":
	case rep.Routes != nil:
		errs = append(errs, rep.Routes)
	case rep.EgressTable:
		fmt.Fprintf(out, "✓ routes to other nodes and nftables table ip %s removed\n", routes.DefaultEgressTable)
	}
	if rep.Agent.RunDir && hadRunDir {
		fmt.Fprintln(out, "✓ run directory removed (namespace files, runc state)")
	}
	if !found && !f.purge && rep.Agent.Foreign == "" {
		fmt.Fprintf(out, "nothing left to stop: no pod, bridge, nftables table or run directory of this node\n")
	}
	if f.purge {
		if err := os.RemoveAll(dataDir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dataDir, err))
		} else {
			fmt.Fprintf(out, "✓ data directory %s removed\n", dataDir)
		}
	} else {
		fmt.Fprintf(out, "the data directory %s is kept ('capstan up' starts the cluster again, its pods anew); 'capstan down --purge' removes it\n", dataDir)
	}
	return errors.Join(errs...)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// purgeMarkers are files of which a cluster's data directory holds at
// least one: the store, the CA, or the agent's saved config.
var purgeMarkers = []string{"capstan.db", "pki/ca.crt", "agent/node.yaml"}

// purgeable refuses to remove dir unless it looks like a cluster's data
// directory: never /, and one that holds a purgeMarker (a missing dir is
// fine: there is nothing to remove).
func purgeable(dir string) error {
	if dir == string(filepath.Separator) {
		return errors.New("--purge would remove / : give the cluster's data directory with --data-dir")
	}
	if !exists(dir) {
		return nil
	}
	for _, m := range purgeMarkers {
		if exists(filepath.Join(dir, filepath.FromSlash(m))) {
			return nil
		}
	}
	return fmt.Errorf("%s holds none of %s, so it is not a Capstan data directory: --purge removes nothing there (check --data-dir; remove the directory by hand if it is one)", dir, strings.Join(purgeMarkers, ", "))
}

// serverStopped refuses to purge the data directory of a running server:
// every server holds a shared lock on apiserver.LockFile while it serves,
// and bbolt an exclusive lock on the store while it is open (servers
// older than the lock file).
func serverStopped(dataDir string) error {
	if held(filepath.Join(dataDir, apiserver.LockFile), unix.LOCK_EX) {
		return fmt.Errorf("a server ('capstan up' or 'capstan server') still runs on the data directory %s; stop it first (Ctrl-C)", dataDir)
	}
	if db := filepath.Join(dataDir, "capstan.db"); held(db, unix.LOCK_SH) {
		return fmt.Errorf("the store %s is open: a server ('capstan up' or 'capstan server') still runs on this data directory; stop it first (Ctrl-C)", db)
	}
	return nil
}

// held reports whether another process holds a lock on path that keeps
// this one from taking how (a missing file: no).
func held(path string, how int) bool {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return errors.Is(unix.Flock(fd, how|unix.LOCK_NB), unix.EWOULDBLOCK)
}

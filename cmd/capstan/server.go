package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/capstanhq/capstan/apiserver"
	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

// serverFlags are the flags of `capstan server`.
type serverFlags struct {
	git     gitFlags
	dataDir string
	listen  string
	sans    []string
	logJSON bool
	verbose bool
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "/var/lib/capstan", "directory for the store, PKI, tokens and admin.yaml")
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:7443", "HTTPS listen address of the API")
	cmd.Flags().StringSliceVar(&f.sans, "tls-san", nil, "extra names or addresses for the serving certificate (repeatable)")
	cmd.Flags().BoolVar(&f.logJSON, "log-json", false, "log as JSON")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "log debug messages")
	f.git.register(cmd)
}

func (f *serverFlags) logger() *slog.Logger {
	lvl := slog.LevelInfo
	if f.verbose {
		lvl = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if f.logJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane: store, API server and controllers",
		Long: `Run the control plane. On first start it creates the data directory, a
cluster CA, a serving certificate and an admin client config at
DATA_DIR/admin.yaml; point the CLI at it with --config or CAPSTAN_CONFIG.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := f.logger()
			repos, err := f.git.configs()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(f.dataDir, 0o700); err != nil {
				return fmt.Errorf("data directory: %w", err)
			}
			st, err := store.Open(filepath.Join(f.dataDir, "capstan.db"), store.Options{Logger: log})
			if err != nil {
				return err
			}
			defer st.Close()
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			srv, err := apiserver.New(apiserver.Options{DataDir: f.dataDir, Listen: f.listen, Store: st, SANs: f.sans, Registry: reg, Logger: log})
			if err != nil {
				return err
			}
			log.Info("admin client config written", "path", srv.AdminConfigPath())
			syncStart, err := startGitSync(srv, f.dataDir, repos, log)
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return st.Start(ctx) })
			g.Go(func() error { return srv.Start(ctx) })
			if syncStart != nil {
				g.Go(func() error { return syncStart(ctx) })
			}
			return g.Wait()
		},
	}
	f.register(cmd)
	return cmd
}

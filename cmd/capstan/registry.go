package main

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/capstanhq/capstan/registry"
	"github.com/sirupsen/logrus"
)

// newRegistry prepares the embedded registry of `capstan server
// --registry-addr` and `capstan up`, storing images in DATA_DIR/registry.
func newRegistry(addr, dataDir string, log *slog.Logger) (*registry.Registry, error) {
	routeLogrus(log)
	reg, err := registry.New(registry.Options{Addr: addr, RootDir: filepath.Join(dataDir, "registry"), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("--registry-addr: %w", err)
	}
	return reg, nil
}

// routeLogrus sends logrus's process-wide standard logger (distribution
// logs every request through it, the containerd client too) into log, and
// nothing to stderr. Replacing the hooks rather than adding one keeps it
// idempotent when a process builds several components.
func routeLogrus(log *slog.Logger) {
	std := logrus.StandardLogger()
	hooks := make(logrus.LevelHooks)
	hooks.Add(registry.LogrusHook(log))
	std.ReplaceHooks(hooks)
	std.SetOutput(io.Discard)
}

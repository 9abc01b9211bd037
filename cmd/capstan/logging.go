package main

import (
	"log/slog"
	"os"

	"github.com/spf13/pflag"
)

// logFlags are the logging flags of the long-running commands.
type logFlags struct {
	logJSON, verbose bool
}

func (f *logFlags) register(fl *pflag.FlagSet) {
	fl.BoolVar(&f.logJSON, "log-json", false, "log as JSON")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log debug messages")
}

// logger logs to stderr at info level, or debug with --verbose.
func (f *logFlags) logger() *slog.Logger {
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

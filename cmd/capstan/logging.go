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
	return f.loggerAt(slog.LevelInfo)
}

// loggerAt logs to stderr at level, or debug with --verbose: a command
// that prints what it did (capstan down) logs only warnings by default.
func (f *logFlags) loggerAt(level slog.Level) *slog.Logger {
	if f.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if f.logJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

package registry

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/sirupsen/logrus"
)

// instanceKey is the context key distribution reads to tag its log lines
// with an instance id. Distribution looks it up by this plain string, so it
// cannot be a private key type.
const instanceKey = "instance.id"

// withInstance tags ctx so that distribution's log lines for this registry
// carry its id in the "instance.id" field.
func withInstance(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, instanceKey, id)
}

// LogrusHook returns a logrus hook that forwards distribution's log lines to
// logger. Distribution logs through logrus's process-wide standard logger,
// which this package never changes; the process owner (cmd/) may route it:
//
//	std := logrus.StandardLogger()
//	std.AddHook(registry.LogrusHook(logger))
//	std.SetOutput(io.Discard)
//
// Routine per-request lines ("response completed") come out at debug level;
// other levels map to their slog counterparts. Fields become attributes.
func LogrusHook(logger *slog.Logger) logrus.Hook { return logrusHook{logger} }

type logrusHook struct{ log *slog.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	level := slog.LevelDebug
	switch {
	case e.Level <= logrus.ErrorLevel:
		level = slog.LevelError
	case e.Level == logrus.WarnLevel:
		level = slog.LevelWarn
	case e.Level == logrus.InfoLevel && e.Message != "response completed":
		level = slog.LevelInfo
	}
	ctx := context.Background()
	if !h.log.Enabled(ctx, level) {
		return nil
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		v := e.Data[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.String(k, fmt.Sprint(v)))
	}
	h.log.LogAttrs(ctx, level, e.Message, attrs...)
	return nil
}

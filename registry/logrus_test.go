package registry_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/registry"
	"github.com/sirupsen/logrus"
)

func TestLogrusHookForwardsToSlog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	// A private logrus logger: the process-wide one stays untouched.
	lr := logrus.New()
	lr.SetOutput(&bytes.Buffer{})
	lr.SetLevel(logrus.DebugLevel)
	lr.AddHook(registry.LogrusHook(logger))

	lr.WithField("instance.id", "abc").Info("response completed") // demoted to debug: dropped
	lr.WithError(errors.New("disk full")).Error("upload failed")
	lr.Warn("careful")

	out := buf.String()
	if strings.Contains(out, "response completed") {
		t.Errorf("per-request line reached an info-level logger:\n%s", out)
	}
	for _, want := range []string{`level=ERROR msg="upload failed" error="disk full"`, `level=WARN msg=careful`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

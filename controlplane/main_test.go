package controlplane

import (
	"os"
	"testing"

	"github.com/capstanhq/capstan/schema/sandbox"
)

// TestMain lets the test binary serve as the evaluation process of the
// servers' git sync (sandbox.Options.Exe defaults to this binary).
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

package main

import (
	"os"
	"testing"

	"github.com/capstanhq/capstan/schema/sandbox"
)

// runMainEnv makes this test binary run main, so that tests can signal
// a real capstan process.
const runMainEnv = "CAPSTAN_TEST_RUN_MAIN"

// TestMain lets this test binary serve as the evaluation sandbox's child,
// as main does for the capstan binary, and as capstan itself.
func TestMain(m *testing.M) {
	sandbox.Main()
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if upInputs.dir != "" {
		os.RemoveAll(upInputs.dir)
	}
	os.Exit(code)
}

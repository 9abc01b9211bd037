package applier_test

import (
	"os"
	"testing"

	"github.com/capstanhq/capstan/schema/sandbox"
)

// TestMain lets this test binary serve as the evaluation sandbox's child.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

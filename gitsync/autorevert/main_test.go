package autorevert

import (
	"os"
	"testing"

	"github.com/capstanhq/capstan/schema/sandbox"
)

// TestMain lets this test binary serve as the evaluation sandbox's child:
// a revert evaluates the descriptors there.
func TestMain(m *testing.M) {
	sandbox.Main()
	os.Exit(m.Run())
}

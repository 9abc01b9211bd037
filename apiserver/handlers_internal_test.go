package apiserver

import (
	"errors"
	"strings"
	"testing"

	"github.com/capstanhq/capstan/apiserver/api"
)

// The unknown-kind error names every kind the API serves.
func TestParseRouteUnknownKindNamesEveryKind(t *testing.T) {
	_, err := parseRoute([]string{"widgets"})
	if !errors.Is(err, api.ErrUnknownKind) {
		t.Fatalf("parseRoute(widgets) = %v, want ErrUnknownKind", err)
	}
	for _, k := range api.Kinds {
		if !strings.Contains(err.Error(), string(k)) {
			t.Errorf("the unknown-kind error %q leaves out %s", err, k)
		}
	}
}

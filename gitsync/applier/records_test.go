package applier

import (
	"fmt"
	"strings"
	"testing"
)

// The "applied commit" log line names a few apps and counts the rest: at
// 10,000 apps it stays short.
func TestLogNamesCapped(t *testing.T) {
	var names []string
	for i := range 10_000 {
		names = append(names, fmt.Sprintf("app-%05d", i))
	}
	got := logNames(names)
	if len(got) > 100 || !strings.HasPrefix(got, "10000 [app-00000 ") || !strings.HasSuffix(got, "...]") {
		t.Errorf("logNames(10,000 names) = %q", got)
	}
	if got := logNames([]string{"a", "b"}); got != "2 [a b]" {
		t.Errorf("logNames(a, b) = %q", got)
	}
}

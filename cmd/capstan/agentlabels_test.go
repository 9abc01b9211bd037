package main

import (
	"strings"
	"testing"
)

// --labels zone=a --labels zone=b names one key twice: the agent refuses
// it rather than keeping whichever came last.
func TestAgentLabelsRefusesAKeyTwice(t *testing.T) {
	_, err := parseLabels([]string{"zone=a", "disk=ssd", "zone=b"})
	if err == nil || !strings.Contains(err.Error(), `"zone" twice`) {
		t.Fatalf("parseLabels(zone=a, zone=b) = %v, want an error naming zone twice", err)
	}
	got, err := parseLabels([]string{"zone=a", "disk="})
	if err != nil || len(got) != 2 || got["zone"] != "a" || got["disk"] != "" {
		t.Fatalf("parseLabels(zone=a, disk=) = %v, %v", got, err)
	}
}

// FuzzAgentLabels: whatever --labels holds, parsing does not panic, an
// error names the flag, and an accepted list keeps every item: each k=v
// given is in the map as given.
func FuzzAgentLabels(f *testing.F) {
	f.Add("zone=a,disk=ssd")
	f.Add("zone=a,zone=a")
	f.Add("=a,b")
	f.Add("a=b=c")
	f.Fuzz(func(t *testing.T, s string) {
		items := strings.Split(s, ",")
		got, err := parseLabels(items)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "--labels: ") {
				t.Fatalf("error %q does not name --labels", err)
			}
			return
		}
		if len(got) != len(items) {
			t.Fatalf("parseLabels(%q) = %v: %d items became %d labels", items, got, len(items), len(got))
		}
		for _, it := range items {
			k, v, _ := strings.Cut(it, "=")
			if w, ok := got[k]; !ok || w != v {
				t.Fatalf("parseLabels(%q) = %v: lost %q", items, got, it)
			}
		}
	})
}

package main

import (
	"strings"
	"testing"
)

// `capstan up --dns-addr` with a port pods cannot reach fails before
// anything starts, saying which port works.
func TestUpRefusesDNSPort(t *testing.T) {
	dir := t.TempDir()
	_, err := run(t, "up", "--data-dir", dir, "--dns-addr", "127.0.0.1:5353")
	if err == nil || !strings.Contains(err.Error(), "port 5353 cannot be used") || !strings.Contains(err.Error(), "127.0.0.1:53") {
		t.Fatalf("capstan up --dns-addr 127.0.0.1:5353: %v, want a refusal naming 127.0.0.1:53", err)
	}
}

package main

import (
	"bytes"
	"testing"

	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/spf13/cobra"
)

// capstan store status prints the switch, and the leader when the
// servers elect one.
func TestPrintStoreStatus(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   wire.ReadOnlyState
		want string
	}{
		{"one server", wire.ReadOnlyState{}, "the store takes writes\n"},
		{"read-only", wire.ReadOnlyState{ReadOnly: true, Reason: "upgrade "}, "the store is read-only: upgrade\n"},
		{"leader", wire.ReadOnlyState{Election: true, Leader: "server-1"}, "the store takes writes\nleader: server-1 (runs the controllers, the scheduler and git sync)\n"},
		{"no leader", wire.ReadOnlyState{Election: true}, "the store takes writes\nleader: none now (the servers elect one within --leader-lease-ttl; controllers, scheduler and git sync wait until then)\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			cmd := &cobra.Command{}
			cmd.SetOut(&out)
			if err := printReadOnly(cmd, tc.st); err != nil || out.String() != tc.want {
				t.Fatalf("printReadOnly(%+v) = %q, %v; want %q", tc.st, out.String(), err, tc.want)
			}
		})
	}
}

package network

import (
	"encoding/json"
	"fmt"
)

// ConfList renders the CNI network configuration list for opts: a bridge
// that is the pods' default gateway, host-local IPAM on the pod CIDR, and
// portmap for host ports when enabled. opts must be validated.
func ConfList(opts Options) ([]byte, error) {
	plugins := []map[string]any{{
		"type":             "bridge",
		"bridge":           opts.Bridge,
		"isGateway":        true,
		"isDefaultGateway": true,
		"ipMasq":           opts.IPMasq,
		"hairpinMode":      true,
		// The bridge takes the gateway address of the current pod CIDR,
		// replacing one left by an earlier CIDR (a Node deleted and
		// registered again gets another block); without it every pod
		// fails with "already has an IP address different from".
		"forceAddress": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": opts.IPAMDir,
			"ranges":  [][]map[string]string{{{"subnet": opts.PodCIDR}}},
		},
	}}
	if opts.PortMap {
		plugins = append(plugins, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		})
	}
	b, err := json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       opts.NetworkName,
		"plugins":    plugins,
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("network %s: render CNI config: %w", opts.NetworkName, err)
	}
	return b, nil
}

package network

import "errors"

// ErrCNI marks a failure reported by a CNI plugin. The wrapped message is
// the plugin's own, for example "no IP addresses available in range set".
var ErrCNI = errors.New("cni plugin failed")

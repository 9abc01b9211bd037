package agent

import "errors"

// ErrNoPodCIDR: the server allocated no pod CIDR to the node and none was
// configured as a fallback.
var ErrNoPodCIDR = errors.New("no pod CIDR: the server allocated none to the node and no fallback is configured")

// ErrHostPortsDisabled: a pod asks for a host port on a node whose agent
// runs without HostPorts.
var ErrHostPortsDisabled = errors.New("host ports are disabled on this node (start its agent with --host-ports: capstan agent --host-ports, or capstan up --host-ports)")

// ErrRunDirInUse: the run directory belongs to another data directory,
// that is another cluster on this machine.
var ErrRunDirInUse = errors.New("the run directory is in use by another cluster")

// ErrVolumeNotReady: a pod's persistent volume is not known to the agent
// yet or not on this node; the start is retried with back-off.
var ErrVolumeNotReady = errors.New("persistent volume not ready")

// ErrVolumeDataMissing: a persistent volume that its node made already
// (its status shows a capacity) has no data on this machine: the machine
// was replaced under the node's name, or the agent's data directory was
// lost or moved. The replica waits instead of starting on a new, empty
// volume; an admin restores the data or forgets the volume.
var ErrVolumeDataMissing = errors.New("the volume's data is not on this machine")

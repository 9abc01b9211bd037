package client

import "github.com/capstanhq/capstan/apiserver/wire"

// RegistryAccess says how to reach the cluster's embedded registry
// (apiserver/wire owns the format).
type RegistryAccess = wire.RegistryAccess

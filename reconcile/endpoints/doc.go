// Package endpoints is the endpoints controller: for each Service it keeps
// an Endpoints object of the same name listing the pods its selector
// matches, with their IP, node, readiness and the service's ports resolved
// against each pod's containers.
//
// Compute (plan.go) is the pure decision core; the Controller applies it.
//
// Concurrency: Compute is a pure function.
package endpoints

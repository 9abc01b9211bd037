// Package registry owns Capstan's embedded OCI registry and the packing of
// directories into OCI images.
//
// The registry serves the OCI distribution API from
// github.com/distribution/distribution/v3 (its handlers App with the
// filesystem storage driver rooted in Options.RootDir). Every write needs
// HTTP basic authentication as a user of Options.Users (New refuses options
// without one), checked in front of the distribution handlers; reads need a
// user of Users or Options.PullUsers, except from loopback peers when
// Options.AnonymousPull is on.
//
// Packing (PackDir) turns a directory into a reproducible single-layer
// linux image, and Push, WriteTarball and List move images with
// github.com/google/go-containerregistry. Nothing in this package speaks the
// registry protocol by hand.
//
// Concurrency: a Registry is started once; Start blocks until its context
// ends and may be called from any goroutine, Ready and Addr are safe to call
// concurrently with it. Several registries may run in one process: this
// package installs no process-wide state (distribution itself registers its
// storage drivers and manifest types once at init, which is shared but
// read-only afterwards). Distribution logs through logrus's process-wide
// standard logger; this package leaves that logger alone, so the process
// owner (cmd/) decides where those lines go, for example with LogrusHook.
// Each registry tags its distribution log lines with a random "instance.id",
// which it also logs at start.
// Images returned by PackDir are immutable and safe for concurrent use.
package registry

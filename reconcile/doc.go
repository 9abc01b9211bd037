// Package reconcile is the controller runtime: a work queue of object keys,
// a Controller that runs a fixed number of workers calling a level-based
// Reconciler for each key, and a Manager that holds what the controllers of
// one process share (client, informers, metrics, logger, clock) and runs
// them. Informer handlers, indexes and the event recorder live here too. The controllers themselves live in the packages
// below it (app, workload, node, endpoints, gc); each has a pure decision
// core that returns a plan, and a thin edge that reads informers and applies
// the plan through the API client.
//
// Concurrency: a Queue is safe for concurrent use. It never hands one key to
// two workers at once: a key added while it is being processed is held back
// and handed out again after Done. A Controller owns its queue's workers;
// informer handlers call Queue().Add from any goroutine.
package reconcile

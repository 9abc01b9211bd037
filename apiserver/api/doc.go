// Package api defines Capstan's resource model: the kinds of objects the API
// server stores (Node, Lease, App, Workload, Pod, Service, Endpoints,
// Revision, Event), their keys, resource quantities, and the validation of
// every field the API accepts.
//
// Every object has Kind, Metadata, Spec and Status. Objects are plain data:
// nothing in this package does I/O, and values are safe to share only when
// nobody mutates them; use DeepCopy-by-JSON (Clone) before changing an object
// you did not create.
package api

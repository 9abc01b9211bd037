// Package wire is the API's wire contract, imported by the server and by
// its client alike: the error body (Status and its reasons), the
// transaction request and response, the list body, the watch line's
// encoder and decoder, the join token, the CA hash, the join and node
// certificate bodies, the secrets recipient body, the client config file,
// and the log query. The server never imports its client; both import
// this. The resource model itself is apiserver/api.
//
// Everything here is a value or a pure function; nothing holds state.
package wire

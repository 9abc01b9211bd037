package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/capstanhq/capstan/apiserver/store"
	"github.com/capstanhq/capstan/apiserver/wire"
)

// fenced returns the request's context, carrying the store.Fence its
// wire.FenceHeader names, if any. The key must be one of the election's
// (Options.FencePrefix): a fence is a condition on the caller's own writes,
// never a way to read other keys of the store.
func (s *Server) fenced(r *http.Request) (context.Context, error) {
	v := r.Header.Get(wire.FenceHeader)
	if v == "" {
		return r.Context(), nil
	}
	key, rev, err := wire.ParseFence(v)
	if err != nil {
		return nil, errorf(http.StatusBadRequest, wire.ReasonBadRequest, err)
	}
	if s.opts.FencePrefix == "" || !strings.HasPrefix(key, s.opts.FencePrefix) {
		return nil, errorf(http.StatusBadRequest, wire.ReasonBadRequest, fmt.Errorf("fence key %q: not an election key of this control plane", key))
	}
	return store.WithFence(r.Context(), store.Fence{Key: key, Rev: rev}), nil
}

package client

import (
	"context"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// MigrateStore asks the server to copy its store into a new one of the
// other backend (admins only); it returns once the copy is done, the old
// store left read-only.
func (c *Client) MigrateStore(ctx context.Context, req wire.MigrateRequest) (wire.MigrateResponse, error) {
	var out wire.MigrateResponse
	err := c.Do(ctx, http.MethodPost, wire.StoreMigratePath, req, &out)
	return out, err
}

// StoreReadOnly returns whether the store refuses writes, and why.
func (c *Client) StoreReadOnly(ctx context.Context) (wire.ReadOnlyState, error) {
	var out wire.ReadOnlyState
	err := c.Do(ctx, http.MethodGet, wire.StoreReadOnlyPath, nil, &out)
	return out, err
}

// SetStoreReadOnly sets the store read-only (with a reason) or writable.
func (c *Client) SetStoreReadOnly(ctx context.Context, st wire.ReadOnlyState) (wire.ReadOnlyState, error) {
	var out wire.ReadOnlyState
	err := c.Do(ctx, http.MethodPut, wire.StoreReadOnlyPath, st, &out)
	return out, err
}

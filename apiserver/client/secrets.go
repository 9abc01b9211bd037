package client

import (
	"context"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/api"
)

// SecretValues reads the opened values of a secret (admins, and nodes
// whose pods use it). Keep them in memory only.
func (c *Client) SecretValues(ctx context.Context, app, name string) (*api.SecretValues, error) {
	var out api.SecretValues
	k := api.Key{Kind: api.KindSecret, App: app, Name: name}
	if err := c.Do(ctx, http.MethodGet, objectPath(k)+"/"+api.SubresourceValues, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

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

// SecretsRecipient reads the cluster's age recipient (any valid token).
func (c *Client) SecretsRecipient(ctx context.Context) (string, error) {
	var out struct {
		Recipient string `json:"recipient"`
	}
	if err := c.Do(ctx, http.MethodGet, "/secrets/recipient", nil, &out); err != nil {
		return "", err
	}
	return out.Recipient, nil
}

package client

import (
	"context"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
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

// SecretsRecipient reads the cluster's age recipients (any valid
// token): the current one, and those of every key sync decrypts with
// (the current one first; only it from a server that gives no others).
func (c *Client) SecretsRecipient(ctx context.Context) (wire.SecretsRecipient, error) {
	var out wire.SecretsRecipient
	if err := c.Do(ctx, http.MethodGet, wire.SecretsRecipientPath, nil, &out); err != nil {
		return wire.SecretsRecipient{}, err
	}
	if len(out.Recipients) == 0 && out.Recipient != "" {
		out.Recipients = []string{out.Recipient}
	}
	return out, nil
}

package client

import (
	"context"
	"io"
	"net/http"

	"github.com/capstanhq/capstan/apiserver/wire"
)

// Backup streams a backup of the cluster (admins only): apiserver/backup's
// tar format, unencrypted; seal it with backup.Seal before it touches a
// disk. Close the reader when done.
func (c *Client) Backup(ctx context.Context) (io.ReadCloser, error) {
	resp, err := c.request(ctx, c.http, http.MethodGet, wire.BackupPath, nil, nil, func(code int) bool { return code == http.StatusOK })
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

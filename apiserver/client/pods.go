package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/capstanhq/capstan/apiserver/api"
	"github.com/capstanhq/capstan/apiserver/wire"
	"github.com/capstanhq/capstan/internal/remotecmd"
)

// LogOptions select a container's log, as `capstan logs` flags do:
// Container (needed when the pod has more than one), Follow (keep
// streaming until the container stops), Previous (the run before the last
// restart), Tail (last N lines; negative: all), Timestamps, and
// SinceSeconds or SinceTime (only the lines written since).
type LogOptions = wire.LogQuery

// Logs streams a pod's container log from its node, through the server.
// Close the reader to stop following.
func (c *Client) Logs(ctx context.Context, pod api.Key, opts LogOptions) (io.ReadCloser, error) {
	resp, err := c.request(ctx, c.http, http.MethodGet, objectPath(pod)+"/log?"+opts.Values().Encode(), nil, nil, func(code int) bool { return code == http.StatusOK })
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// TermSize is a terminal size in characters.
type TermSize = remotecmd.TermSize

// ExecOptions describe a command to run in a pod's container.
type ExecOptions struct {
	Container string
	Command   []string
	Stdin     io.Reader // nil: the command's input is empty
	Stdout    io.Writer
	Stderr    io.Writer // with TTY everything comes on Stdout
	TTY       bool
	// Resize sends the local terminal's size (with TTY).
	Resize <-chan TermSize
}

// Exec runs a command in a pod's container, through the server to the
// pod's agent, and returns its exit code.
func (c *Client) Exec(ctx context.Context, pod api.Key, opts ExecOptions) (int, error) {
	if len(opts.Command) == 0 {
		return -1, fmt.Errorf("exec %s: no command", pod)
	}
	q := url.Values{"command": opts.Command}
	if opts.Container != "" {
		q.Set("container", opts.Container)
	}
	if opts.Stdin != nil {
		q.Set("stdin", "true")
	}
	if opts.TTY {
		q.Set("tty", "true")
	}
	upgrade := func(req *http.Request) {
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", remotecmd.Protocol)
	}
	resp, err := c.request(context.WithoutCancel(ctx), c.upgrade, http.MethodPost, objectPath(pod)+"/exec?"+q.Encode(), nil, upgrade, func(code int) bool { return code == http.StatusSwitchingProtocols })
	if err != nil {
		return -1, err
	}
	conn, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return -1, fmt.Errorf("exec %s: the server did not upgrade the connection", pod)
	}
	defer conn.Close()
	return remotecmd.Run(ctx, conn, remotecmd.Streams{Stdin: opts.Stdin, Stdout: opts.Stdout, Stderr: opts.Stderr, Resize: opts.Resize})
}

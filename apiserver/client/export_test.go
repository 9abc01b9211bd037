package client

// CreatesWaiting returns how many of c's creates wait for a request, and
// how many requests of creates c has in flight (see batch.go).
func CreatesWaiting(c *Client) (waiting, sending int) {
	c.batch.mu.Lock()
	defer c.batch.mu.Unlock()
	return len(c.batch.queue), c.batch.sending
}

// MinCreatesSending is how many requests of creates a client has in
// flight before its creates wait; FullBatch waiting creates go at once.
const (
	MinCreatesSending = minCreatesSending
	FullBatch         = fullBatch
)

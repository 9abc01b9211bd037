package proxy

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"

	"sigs.k8s.io/knftables"
)

// maxBatch bounds the elements merged into one nft command.
const maxBatch = 1024

// batchElements rewrites a transaction's text so that consecutive element
// commands on one set ("add element ip capstan hairpin { a . a }" lines)
// become one command with many elements. knftables writes one command per
// element; nft spends most of a full rebuild parsing them, and the merged
// form is the same transaction (nft applies it as one netlink batch
// either way).
func batchElements(script string) []byte {
	var out bytes.Buffer
	out.Grow(len(script))
	var prefix string // "add element ip capstan hairpin {" of the open command
	n := 0
	flush := func() {
		if prefix != "" {
			out.WriteString(" }\n")
			prefix, n = "", 0
		}
	}
	for line := range strings.Lines(script) {
		line = strings.TrimSuffix(line, "\n")
		open := strings.Index(line, " { ")
		isElem := (strings.HasPrefix(line, "add element ") || strings.HasPrefix(line, "delete element ")) &&
			open > 0 && strings.HasSuffix(line, " }")
		if !isElem {
			flush()
			out.WriteString(line)
			out.WriteByte('\n')
			continue
		}
		p, elem := line[:open+2], line[open+3:len(line)-2]
		if p == prefix && n < maxBatch {
			out.WriteString(", ")
		} else {
			flush()
			prefix = p
			out.WriteString(p)
			out.WriteByte(' ')
		}
		out.WriteString(elem)
		n++
	}
	flush()
	return out.Bytes()
}

// nftRunner runs transactions through the nft binary with element commands
// batched (batchElements). It runs nft in the network namespace of the
// calling thread, as knftables does.
type nftRunner struct{ path string }

func (r nftRunner) run(ctx context.Context, tx *knftables.Transaction) error {
	cmd := exec.CommandContext(ctx, r.path, "-f", "-")
	cmd.Stdin = bytes.NewReader(batchElements(tx.String()))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

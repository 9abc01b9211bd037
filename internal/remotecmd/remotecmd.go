// Package remotecmd is the wire protocol of `capstan exec`: after an HTTP
// upgrade to Protocol, both ends exchange frames
//
//	[1 byte channel][4 bytes big-endian length][payload]
//
// The client sends Stdin, CloseStdin and Resize frames; the agent sends
// Stdout, Stderr and, last, one Exit frame. The API server relays the bytes
// without reading them. Kubernetes multiplexes exec streams the same way
// (channel-prefixed messages over SPDY or WebSocket); a plain upgraded
// connection with length-prefixed frames needs no extra library.
package remotecmd

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Protocol is the Upgrade header's value.
const Protocol = "capstan-exec.v1"

// Channel says what a frame carries.
type Channel byte

// Channels.
const (
	Stdin      Channel = 0 // client -> agent: input bytes
	Stdout     Channel = 1 // agent -> client
	Stderr     Channel = 2 // agent -> client
	Resize     Channel = 3 // client -> agent: JSON TermSize
	CloseStdin Channel = 4 // client -> agent: input ended; no payload
	Exit       Channel = 5 // agent -> client: JSON ExitStatus, the last frame
	maxChannel         = Exit
)

// MaxPayload bounds one frame's payload.
const MaxPayload = 32 << 10

// TermSize is a terminal's size in characters.
type TermSize struct {
	Width  uint16 `json:"width"`
	Height uint16 `json:"height"`
}

// ExitStatus ends a session: the command's exit code, or an error when it
// could not be run; then Code is the shell's status for a program that
// cannot run (127 not found, 126 not executable), or -1.
type ExitStatus struct {
	Code  int    `json:"code"`
	Error string `json:"error,omitempty"`
}

// ErrProtocol wraps every malformed frame.
var ErrProtocol = errors.New("exec protocol")

// Accept answers an upgrade request to Protocol with 101 Switching
// Protocols and returns the connection (its buffered input included).
func Accept(w http.ResponseWriter) (io.ReadWriteCloser, error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("take over the connection: %w (exec needs HTTP/1.1)", err)
	}
	_ = conn.SetDeadline(time.Time{})
	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"); err != nil {
		conn.Close()
		return nil, err
	}
	if err := brw.Flush(); err != nil {
		conn.Close()
		return nil, err
	}
	return upgraded{brw.Reader, conn}, nil
}

// upgraded reads through the hijacked connection's buffer.
type upgraded struct {
	r io.Reader
	net.Conn
}

func (u upgraded) Read(p []byte) (int, error) { return u.r.Read(p) }

// Writer writes frames; it is safe for concurrent use.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Frame writes one frame; payloads longer than MaxPayload are split.
func (fw *Writer) Frame(ch Channel, p []byte) error {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	for {
		n := min(len(p), MaxPayload)
		var hdr [5]byte
		hdr[0] = byte(ch)
		binary.BigEndian.PutUint32(hdr[1:], uint32(n))
		if _, err := fw.w.Write(append(hdr[:], p[:n]...)); err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
	}
}

// Stream returns an io.Writer that sends everything written as frames of ch.
func (fw *Writer) Stream(ch Channel) io.Writer { return streamWriter{fw, ch} }

type streamWriter struct {
	fw *Writer
	ch Channel
}

func (s streamWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := s.fw.Frame(s.ch, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Reader reads frames.
type Reader struct {
	r   *bufio.Reader
	buf []byte
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 8<<10)} }

// Next returns the next frame; the payload is valid until the next call.
// It returns io.EOF at a clean end between frames and an error wrapping
// ErrProtocol for an unknown channel, an over-long payload or a cut frame.
func (fr *Reader) Next() (Channel, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(fr.r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: frame header cut short", ErrProtocol)
		}
		return 0, nil, err
	}
	ch, n := Channel(hdr[0]), binary.BigEndian.Uint32(hdr[1:])
	if ch > maxChannel {
		return 0, nil, fmt.Errorf("%w: unknown channel %d", ErrProtocol, ch)
	}
	if n > MaxPayload {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes, more than %d", ErrProtocol, n, MaxPayload)
	}
	if cap(fr.buf) < int(n) {
		fr.buf = make([]byte, n)
	}
	p := fr.buf[:n]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return 0, nil, fmt.Errorf("%w: frame of %d bytes cut short: %v", ErrProtocol, n, err)
	}
	return ch, p, nil
}

// Streams are one end's standard streams. Nil ones are not used.
type Streams struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize delivers terminal sizes (the client's, to send; the agent's
	// handler, to apply).
	Resize <-chan TermSize
}

// Run is the client's side of a session on an upgraded connection: it sends
// s.Stdin (then CloseStdin) and the sizes from s.Resize, writes what comes
// back to s.Stdout and s.Stderr, and returns the command's exit code. An
// Exit frame with an error is returned as an error, with its code (127 or
// 126 for a program that cannot run, else -1).
func Run(ctx context.Context, conn io.ReadWriteCloser, s Streams) (int, error) {
	fw := NewWriter(conn)
	done := make(chan struct{})
	defer close(done)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if s.Stdin != nil {
		go func() {
			_, err := io.Copy(fw.Stream(Stdin), s.Stdin)
			if err == nil {
				_ = fw.Frame(CloseStdin, nil)
			}
		}()
	}
	if s.Resize != nil {
		go func() {
			for {
				select {
				case <-done:
					return
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					b, _ := json.Marshal(sz)
					if fw.Frame(Resize, b) != nil {
						return
					}
				}
			}
		}()
	}
	fr := NewReader(conn)
	for {
		ch, p, err := fr.Next()
		if err != nil {
			if ctx.Err() != nil {
				return -1, ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the connection closed before the command's exit status arrived")
			}
			return -1, fmt.Errorf("exec: %w", err)
		}
		switch ch {
		case Stdout:
			if s.Stdout != nil {
				_, _ = s.Stdout.Write(p)
			}
		case Stderr:
			if s.Stderr != nil {
				_, _ = s.Stderr.Write(p)
			}
		case Exit:
			var st ExitStatus
			if err := json.Unmarshal(p, &st); err != nil {
				return -1, fmt.Errorf("%w: exit status %q: %v", ErrProtocol, p, err)
			}
			if st.Error != "" {
				if st.Code <= 0 {
					st.Code = -1
				}
				return st.Code, errors.New(st.Error)
			}
			return st.Code, nil
		default:
			return -1, fmt.Errorf("%w: the agent sent a frame on channel %d", ErrProtocol, ch)
		}
	}
}

// Serve is the agent's side: it runs fn with streams fed by the client's
// frames (Stdin only when stdin is set; Resize always) and sends fn's
// output, then its exit status. fn's context ends when the client goes
// away. Serve closes conn.
func Serve(ctx context.Context, conn io.ReadWriteCloser, stdin bool, fn func(ctx context.Context, s Streams) (int, error)) error {
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fw := NewWriter(conn)
	resize := make(chan TermSize, 1)
	s := Streams{Stdout: fw.Stream(Stdout), Stderr: fw.Stream(Stderr), Resize: resize}
	var pw *io.PipeWriter
	if stdin {
		var pr *io.PipeReader
		pr, pw = io.Pipe()
		s.Stdin = pr
	}
	readErr := make(chan error, 1)
	go func() {
		err := serveInput(NewReader(conn), pw, resize)
		if pw != nil {
			pw.CloseWithError(err)
		}
		readErr <- err
		if err != nil {
			cancel() // the client went away or broke the protocol
		}
	}()
	code, err := fn(ctx, s)
	st := ExitStatus{Code: code}
	if err != nil {
		st.Error = err.Error()
		if code <= 0 {
			st.Code = -1
		}
	}
	b, _ := json.Marshal(st)
	if werr := fw.Frame(Exit, b); werr != nil {
		return fmt.Errorf("exec: send exit status: %w", werr)
	}
	select {
	case err := <-readErr:
		if errors.Is(err, ErrProtocol) {
			return err
		}
	default:
	}
	return nil
}

// serveInput feeds the client's frames to the command until the connection
// ends (io.EOF) or breaks the protocol.
func serveInput(fr *Reader, stdin *io.PipeWriter, resize chan TermSize) error {
	for {
		ch, p, err := fr.Next()
		if err != nil {
			return err
		}
		switch ch {
		case Stdin:
			if stdin == nil {
				continue // no stdin requested: drop it
			}
			if _, err := stdin.Write(p); err != nil {
				stdin = nil // the command closed its input; keep reading
			}
		case CloseStdin:
			if stdin != nil {
				stdin.Close()
				stdin = nil
			}
		case Resize:
			var sz TermSize
			if err := json.Unmarshal(p, &sz); err != nil {
				return fmt.Errorf("%w: resize %q: %v", ErrProtocol, p, err)
			}
			select {
			case <-resize: // keep only the newest size
			default:
			}
			resize <- sz
		default:
			return fmt.Errorf("%w: the client sent a frame on channel %d", ErrProtocol, ch)
		}
	}
}

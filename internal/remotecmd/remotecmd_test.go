package remotecmd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// session runs Serve with fn on one end of a pipe and Run on the other.
func session(t *testing.T, stdin io.Reader, resize <-chan TermSize, fn func(context.Context, Streams) (int, error)) (code int, stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, b, stdin != nil, fn) }()
	var out, errb bytes.Buffer
	code, err = Run(ctx, a, Streams{Stdin: stdin, Stdout: &out, Stderr: &errb, Resize: resize})
	a.Close()
	if serr := <-served; serr != nil {
		t.Errorf("Serve: %v", serr)
	}
	return code, out.String(), errb.String(), err
}

func TestSessionCarriesStreamsAndExitCode(t *testing.T) {
	big := strings.Repeat("x", 3*MaxPayload+17) // split across frames
	code, out, errs, err := session(t, strings.NewReader("hello\n"+big), nil, func(_ context.Context, s Streams) (int, error) {
		in, err := io.ReadAll(s.Stdin) // ends at CloseStdin
		if err != nil {
			return -1, err
		}
		s.Stdout.Write(in)
		s.Stderr.Write([]byte("warn"))
		return 3, nil
	})
	if err != nil || code != 3 || out != "hello\n"+big || errs != "warn" {
		t.Fatalf("code %d err %v stdout %d bytes stderr %q", code, err, len(out), errs)
	}
}

func TestSessionReportsFailureToRun(t *testing.T) {
	code, _, _, err := session(t, nil, nil, func(context.Context, Streams) (int, error) {
		return 0, errors.New("container web is not running")
	})
	if code != -1 || err == nil || err.Error() != "container web is not running" {
		t.Fatalf("code %d err %v", code, err)
	}
}

// A program that cannot run came back as -1, and capstan exec exited 1;
// the shell's status (127 not found, 126 not executable) now comes
// through with the error, as docker and kubectl exit with it.
func TestSessionCarriesTheStatusOfAProgramThatCannotRun(t *testing.T) {
	for _, want := range []int{127, 126} {
		code, _, _, err := session(t, nil, nil, func(context.Context, Streams) (int, error) {
			return want, errors.New(`command cannot run: "nosuch"`)
		})
		if code != want || err == nil || err.Error() != `command cannot run: "nosuch"` {
			t.Errorf("code %d err %v, want %d and the error", code, err, want)
		}
	}
}

func TestSessionDeliversResize(t *testing.T) {
	resize := make(chan TermSize, 1)
	resize <- TermSize{Width: 120, Height: 40}
	code, out, _, err := session(t, nil, resize, func(ctx context.Context, s Streams) (int, error) {
		select {
		case sz := <-s.Resize:
			s.Stdout.Write([]byte{byte(sz.Width), byte(sz.Height)})
			return 0, nil
		case <-ctx.Done():
			return -1, ctx.Err()
		}
	})
	if err != nil || code != 0 || out != string([]byte{120, 40}) {
		t.Fatalf("code %d err %v out %q", code, err, out)
	}
}

func TestServeStopsCommandWhenClientLeaves(t *testing.T) {
	a, b := net.Pipe()
	stopped := make(chan struct{})
	go func() {
		_ = Serve(context.Background(), b, true, func(ctx context.Context, _ Streams) (int, error) {
			<-ctx.Done()
			close(stopped)
			return -1, ctx.Err()
		})
	}()
	a.Close()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("the command's context did not end when the client left")
	}
}

func TestReaderRefusesBadFrames(t *testing.T) {
	for name, in := range map[string][]byte{
		"unknown channel": {9, 0, 0, 0, 0},
		"too long":        {1, 0, 1, 0, 1},
		"cut header":      {1, 0},
		"cut payload":     {1, 0, 0, 0, 5, 'a'},
	} {
		_, _, err := NewReader(bytes.NewReader(in)).Next()
		if !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: err = %v, want ErrProtocol", name, err)
		}
	}
	if _, _, err := NewReader(bytes.NewReader(nil)).Next(); err != io.EOF {
		t.Errorf("empty: err = %v, want io.EOF", err)
	}
}

// FuzzServeInput feeds arbitrary client bytes to the agent's side: it
// must end with an error or nil, never panic or hang.
func FuzzServeInput(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Frame(Stdin, []byte("ls\n"))
	w.Frame(Resize, []byte(`{"width":80,"height":24}`))
	w.Frame(CloseStdin, nil)
	f.Add(buf.Bytes())
	f.Add([]byte{3, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{3, 0, 0, 0, 1, '['})
	f.Add([]byte{5, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		pr, pw := io.Pipe()
		go io.Copy(io.Discard, pr)
		err := serveInput(NewReader(bytes.NewReader(data)), pw, make(chan TermSize, 1))
		if err == nil {
			t.Fatal("serveInput returned nil before the input ended")
		}
		pr.Close()
	})
}

// FuzzRunOutput feeds arbitrary agent bytes to the client's side.
func FuzzRunOutput(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.Frame(Stdout, []byte("hi"))
	w.Frame(Exit, []byte(`{"code":2}`))
	f.Add(buf.Bytes())
	f.Add([]byte{5, 0, 0, 0, 1, '{'})
	f.Fuzz(func(t *testing.T, data []byte) {
		conn := struct {
			io.Reader
			io.Writer
			io.Closer
		}{bytes.NewReader(data), io.Discard, io.NopCloser(nil)}
		code, err := Run(context.Background(), conn, Streams{Stdout: io.Discard})
		if err != nil && code != -1 {
			t.Fatalf("code %d with error %v", code, err)
		}
	})
}

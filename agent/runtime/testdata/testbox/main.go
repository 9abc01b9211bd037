// Command testbox is a multi-purpose program for the runtime's end-to-end
// tests. The first argument picks what it does:
//
//	sleep                  wait for SIGTERM, print "got SIGTERM", exit 0
//	ignore-term            ignore SIGTERM and wait forever
//	exit CODE              print "exiting CODE" and exit with CODE
//	oom                    allocate and touch memory until killed
//	serve ADDR FILE TEXT   listen on ADDR, then write TEXT to FILE (so FILE
//	                       says the server is up), answer "pong", until SIGTERM
//	check ADDR FILE TEXT   wait for FILE to say TEXT, then dial ADDR for "pong", exit 0 (1 on failure)
//	report ADDR FILE OUT   wait for FILE, dial ADDR for "pong", write what it
//	                       learnt to OUT, then wait for SIGTERM
//	http ADDR FILE         serve HTTP on ADDR: /ready answers 200 while FILE
//	                       exists, 503 otherwise; until SIGTERM
//	dial ADDR              dial ADDR once for "pong", exit 0 (1 on failure)
//	spam N                 print N numbered lines, then wait for SIGTERM
//	flood N FILE           print N numbered lines, writing to FILE how many
//	                       are printed after every 100 and waiting for
//	                       SIGUSR1 after the first 100, then "flood done";
//	                       wait for SIGTERM
//	cat FILE               print FILE
//	echo ARGS...           print ARGS and "to stderr" on stderr
//	env                    print the environment, one variable a line
//	stdin                  copy standard input to standard output, then print "eof"
//	tty                    print whether stdin is a terminal and, once the
//	                       terminal has a size (SIGWINCH), "size=COLSxROWS"
//	background [wait]      start "testbox ignore-term" holding this one's
//	                       stdout and stderr, print "started", exit 0 (as
//	                       sh -c "daemon &" does); with wait, wait for
//	                       SIGTERM instead of exiting
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/term"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testbox MODE ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "sleep":
		waitTerm()
	case "ignore-term":
		// Caught rather than ignored, so each one is logged (a test
		// waits for the stop to have begun); a bare select{} would be
		// reported as a deadlock by the Go runtime.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		for {
			<-c
			fmt.Println("got SIGTERM, ignored")
		}
	case "exit":
		code, _ := strconv.Atoi(args[0])
		fmt.Println("exiting", code)
		os.Exit(code)
	case "oom":
		var hold [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	case "serve":
		serve(args[0], args[1], args[2])
	case "check":
		os.Exit(check(args[0], args[1], args[2]))
	case "report":
		report(args[0], args[1], args[2])
		waitTerm()
	case "http":
		file := args[1]
		http.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
			if _, err := os.Stat(file); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
			}
		})
		go func() {
			fmt.Fprintln(os.Stderr, http.ListenAndServe(args[0], nil))
			os.Exit(1)
		}()
		waitTerm()
	case "dial":
		os.Exit(dial(args[0]))
	case "spam":
		n, _ := strconv.Atoi(args[0])
		for i := range n {
			fmt.Printf("line %06d %s\n", i, strings.Repeat("x", 80))
		}
		waitTerm()
	case "flood":
		n, _ := strconv.Atoi(args[0])
		gate := make(chan os.Signal, 1)
		signal.Notify(gate, syscall.SIGUSR1)
		for i := range n {
			if i == 100 { // the test stops the agent meanwhile
				<-gate
			}
			fmt.Printf("line %06d %s\n", i, strings.Repeat("x", 80))
			if (i+1)%100 == 0 {
				os.WriteFile(args[1]+".tmp", []byte(strconv.Itoa(i+1)), 0o644)
				os.Rename(args[1]+".tmp", args[1])
			}
		}
		fmt.Println("flood done")
		waitTerm()
	case "cat":
		b, err := os.ReadFile(args[0])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.Write(b)
	case "echo":
		fmt.Println(strings.Join(args, " "))
		fmt.Fprintln(os.Stderr, "to stderr")
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case "stdin":
		io.Copy(os.Stdout, os.Stdin)
		fmt.Println("eof")
	case "tty":
		fd := int(os.Stdin.Fd())
		fmt.Printf("terminal=%v\n", term.IsTerminal(fd))
		// A resize after the start arrives as SIGWINCH.
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		timeout := time.After(10 * time.Second)
		for {
			if w, h, err := term.GetSize(fd); err == nil && w > 0 {
				fmt.Printf("size=%dx%d\n", w, h)
				return
			}
			select {
			case <-winch:
			case <-timeout:
				fmt.Println("size=unknown")
				return
			}
		}
	case "background":
		child := exec.Command("/proc/self/exe", "ignore-term")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("started")
		if len(args) > 0 && args[0] == "wait" {
			waitTerm()
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func waitTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	fmt.Println("waiting")
	<-c
	fmt.Println("got SIGTERM")
	os.Exit(0)
}

func serve(addr, file, text string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Renamed into place, so a reader sees all of TEXT or nothing.
	if err := os.WriteFile(file+".tmp", []byte(text), 0o644); err == nil {
		err = os.Rename(file+".tmp", file)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("serving", addr)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, "pong")
			c.Close()
		}
	}()
	waitTerm()
}

// dial asks addr once for "pong".
func dial(addr string) int {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		fmt.Println("peer did not answer:", err)
		return 1
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.TrimSpace(line) != "pong" {
		fmt.Printf("peer said %q\n", line)
		return 1
	}
	fmt.Println("peer says pong")
	return 0
}

// waitFile returns FILE's content once ok accepts it, woken by inotify
// events on its directory; false after 30 s.
func waitFile(file string, ok func([]byte) bool) ([]byte, bool) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(file)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return nil, false
	}
	timeout := time.After(30 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && ok(b) {
			return b, true
		}
		select {
		case <-w.Events:
		case err := <-w.Errors:
			fmt.Fprintln(os.Stderr, err)
			return nil, false
		case <-timeout:
			return nil, false
		}
	}
}

func check(addr, file, text string) int {
	b, ok := waitFile(file, func(b []byte) bool { return string(b) == text })
	if !ok {
		fmt.Println("file not shared")
		return 1
	}
	if code := dial(addr); code != 0 {
		return code
	}
	fmt.Printf("volume says %q\n", b)
	return 0
}

// report waits until the file has content and the peer answers, then
// records both in out (for the agent's tests, which read it from a volume).
func report(addr, file, out string) {
	b, ok := waitFile(file, func(b []byte) bool { return len(b) > 0 })
	if !ok || dial(addr) != 0 {
		os.Exit(1)
	}
	if err := os.WriteFile(out, []byte("peer=pong file="+string(b)), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Command testbox is a multi-purpose program for the runtime's end-to-end
// tests. The first argument picks what it does:
//
//	sleep                  wait for SIGTERM, print "got SIGTERM", exit 0
//	ignore-term            ignore SIGTERM and wait forever
//	exit CODE              print "exiting CODE" and exit with CODE
//	oom                    allocate and touch memory until killed
//	serve ADDR FILE TEXT   write TEXT to FILE, answer "pong" on ADDR, until SIGTERM
//	check ADDR FILE TEXT   dial ADDR until "pong", read FILE until TEXT, exit 0 (1 on timeout)
//	report ADDR FILE OUT   dial ADDR until "pong", read FILE, write what it
//	                       learnt to OUT, then wait for SIGTERM
//	http ADDR FILE         serve HTTP on ADDR: /ready answers 200 while FILE
//	                       exists, 503 otherwise; until SIGTERM
//	dial ADDR              dial ADDR until "pong", exit 0 (1 on timeout)
//	spam N                 print N numbered lines, then wait for SIGTERM
//	cat FILE               print FILE
//	echo ARGS...           print ARGS and "to stderr" on stderr
//	env                    print the environment, one variable a line
//	stdin                  copy standard input to standard output, then print "eof"
//	tty                    print whether stdin is a terminal and, once the
//	                       terminal has a size, "size=COLSxROWS"
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

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
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		// Block on a signal channel: a bare select{} would be reported
		// as a deadlock by the Go runtime.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR2)
		for {
			<-c
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
		for range 1000 {
			if w, h, err := term.GetSize(fd); err == nil && w > 0 {
				fmt.Printf("size=%dx%d\n", w, h)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("size=unknown")
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
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", addr)
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

func dial(addr string) int {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.TrimSpace(line) == "pong" {
				fmt.Println("peer says pong")
				return 0
			}
		}
		if time.Now().After(deadline) {
			fmt.Println("peer did not answer")
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func check(addr, file, text string) int {
	if code := dial(addr); code != 0 {
		return code
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if b, err := os.ReadFile(file); err == nil && string(b) == text {
			fmt.Printf("volume says %q\n", b)
			return 0
		}
		if time.Now().After(deadline) {
			fmt.Println("file not shared")
			return 1
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// report waits until the peer answers and the file has content, then
// records both in out (for the agent's tests, which read it from a volume).
func report(addr, file, out string) {
	if dial(addr) != 0 {
		os.Exit(1)
	}
	var content string
	for content == "" {
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			content = string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(out, []byte("peer=pong file="+content), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// Command podbox is the test program of the agent's end-to-end tests. The
// first argument picks what it does:
//
//	sleep                  wait for SIGTERM, exit 0
//	exit CODE              exit with CODE at once
//	serve ADDR FILE TEXT   write TEXT to FILE, answer "pong" on ADDR, until SIGTERM
//	check ADDR FILE OUT    dial ADDR until "pong", read FILE, write what it
//	                       learnt to OUT, then wait for SIGTERM
//	http ADDR FILE         serve HTTP on ADDR: /ready answers 200 while FILE
//	                       exists, 503 otherwise; until SIGTERM
//	oom                    allocate and touch memory until killed
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: podbox MODE ...")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "sleep":
		waitTerm()
	case "exit":
		code, _ := strconv.Atoi(args[0])
		os.Exit(code)
	case "serve":
		if err := os.WriteFile(args[1], []byte(args[2]), 0o644); err != nil {
			fail(err)
		}
		ln, err := net.Listen("tcp", args[0])
		if err != nil {
			fail(err)
		}
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
	case "check":
		check(args[0], args[1], args[2])
		waitTerm()
	case "http":
		file := args[1]
		http.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
			if _, err := os.Stat(file); err != nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
			}
		})
		go func() { fail(http.ListenAndServe(args[0], nil)) }()
		waitTerm()
	case "oom":
		var hold [][]byte
		for {
			b := make([]byte, 1<<20)
			for i := range b {
				b[i] = 1
			}
			hold = append(hold, b)
		}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

func waitTerm() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM)
	<-c
	os.Exit(0)
}

// check polls until the peer answers and the file is there, then records
// both in out.
func check(addr, file, out string) {
	var peer, content string
	for peer == "" || content == "" {
		if peer == "" {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				line, _ := bufio.NewReader(c).ReadString('\n')
				c.Close()
				peer = strings.TrimSpace(line)
			}
		}
		if b, err := os.ReadFile(file); err == nil && len(b) > 0 {
			content = string(b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := os.WriteFile(out, []byte("peer="+peer+" file="+content), 0o644); err != nil {
		fail(err)
	}
}

/*
Copyright 2026 The RecPipeline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package testredis starts a real redis-server for the runtime's tests: on a
// free loopback port, without persistence, killed with the test binary.
package testredis

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/testport"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	stop func()
}

// Stop kills the server and removes its directory.
func (s *Server) Stop() { s.stop() }

// Start starts a redis-server and waits until it accepts connections.
func Start() (*Server, error) {
	bin, err := find()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "recpipeline-redis-")
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		port, err := testport.Free()
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		var out bytes.Buffer
		cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir)
		cmd.Stdout, cmd.Stderr = &out, &out
		setParentDeathSignal(cmd)
		if err := cmd.Start(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("failed to start %s: %w", bin, err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if waitListening(addr, exited) {
			return &Server{Addr: addr, stop: func() {
				_ = cmd.Process.Kill()
				<-exited
				os.RemoveAll(dir)
			}}, nil
		}
		_ = cmd.Process.Kill()
		<-exited
		// Another process may have taken the port meanwhile: try another.
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server did not start on %s: %s", addr, out.String())
		}
	}
}

// Need returns the server's address, or, when there is none (err says why),
// fails the test when CI is set and skips it otherwise.
func Need(tb testing.TB, s *Server, err error) string {
	tb.Helper()
	if s != nil {
		return s.Addr
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("redis-server is required when CI is set: %v", err)
	}
	tb.Skipf("skipping: no redis-server (install the redis-server package): %v", err)
	return ""
}

func find() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const fallback = "/usr/bin/redis-server"
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", errors.New("redis-server is neither on PATH nor at " + fallback)
}

func waitListening(addr string, exited <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

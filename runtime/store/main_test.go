package store

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// redisAddr is the address of the redis-server TestMain started, empty if it
// could not start one; redisErr says why.
var (
	redisAddr string
	redisErr  error
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	stop, err := startRedis()
	if err != nil {
		redisErr = err
	}
	code := m.Run()
	if stop != nil {
		stop()
	}
	os.Exit(code)
}

// needRedis returns the test server's address. Without one it fails the test
// when CI is set, and skips it otherwise.
func needRedis(tb testing.TB) string {
	tb.Helper()
	if redisAddr != "" {
		return redisAddr
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("redis-server is required when CI is set: %v", redisErr)
	}
	tb.Skipf("skipping: no redis-server (install the redis-server package): %v", redisErr)
	return ""
}

func findRedisServer() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	const fallback = "/usr/bin/redis-server"
	if _, err := os.Stat(fallback); err == nil {
		return fallback, nil
	}
	return "", errors.New("redis-server is neither on PATH nor at " + fallback)
}

// startRedis starts a redis-server without persistence on a free loopback
// port and waits until it accepts connections.
func startRedis() (stop func(), err error) {
	bin, err := findRedisServer()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "store-redis-")
	if err != nil {
		return nil, err
	}
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
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
			redisAddr = addr
			return func() {
				_ = cmd.Process.Kill()
				<-exited
				os.RemoveAll(dir)
			}, nil
		}
		_ = cmd.Process.Kill()
		<-exited
		err = fmt.Errorf("redis-server did not start on %s: %s", addr, out.String())
		if attempt == 2 {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	return nil, errors.New("unreachable")
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
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tempDir is t.TempDir for a store directory.
func tempDir(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "store")
}

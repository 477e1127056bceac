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

package stageauth

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func writeToken(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
}

// serve starts a gRPC server guarded by tok on loopback and returns its
// address.
func serve(t *testing.T, tok *Token) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(tok.ServerOptions()...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

// call makes one unary call to addr, with creds when not nil, and returns
// its status code.
func call(t *testing.T, addr string, creds *Token) codes.Code {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return status.Code(err)
}

func TestOnlyTheTokenIsAnswered(t *testing.T) {
	dir := t.TempDir()
	writeToken(t, filepath.Join(dir, "server"), "s3cret\n")
	writeToken(t, filepath.Join(dir, "right"), "s3cret")
	writeToken(t, filepath.Join(dir, "wrong"), "guess")
	open := func(name string) *Token {
		tok, err := Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	addr := serve(t, open("server"))
	for name, c := range map[string]struct {
		creds *Token
		want  codes.Code
	}{
		"no token":    {nil, codes.Unauthenticated},
		"wrong token": {open("wrong"), codes.Unauthenticated},
		"the token":   {open("right"), codes.OK},
	} {
		if got := call(t, addr, c.creds); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

func TestAReplacedTokenIsReadAgain(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	writeToken(t, path, "old")
	tok, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok.now = func() time.Time { return now }
	writeToken(t, path, "new")
	if v, _ := tok.Value(); v != "old" {
		t.Errorf("within ReloadEvery: %q, want the token read first, old", v)
	}
	now = now.Add(ReloadEvery)
	if v, _ := tok.Value(); v != "new" {
		t.Errorf("after ReloadEvery: %q, want the file's new token", v)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(ReloadEvery)
	if v, err := tok.Value(); v != "new" || err != nil {
		t.Errorf("file gone: %q, %v; want the last good token kept", v, err)
	}
}

func TestOpenRefusesNoToken(t *testing.T) {
	dir := t.TempDir()
	writeToken(t, filepath.Join(dir, "empty"), " \n")
	for _, name := range []string{"empty", "missing"} {
		if _, err := Open(filepath.Join(dir, name)); err == nil {
			t.Errorf("%s: opened, want an error", name)
		}
	}
}

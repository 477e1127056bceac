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

// Package stageauth guards the gRPC calls between the stages of one
// pipeline with a shared token: the frontend presents it as a bearer token
// on every call, the retrieval and ranker stages refuse a call without it
// (codes.Unauthenticated), so that a pod outside the pipeline can neither
// read candidates nor have items ranked, even where no NetworkPolicy is
// enforced. The token is a file (the operator mounts a Secret there) read
// again every ReloadEvery, so that a replaced Secret reaches running pods
// without a restart.
package stageauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// ReloadEvery is how long a token read from its file is used before the
// file is read again.
const ReloadEvery = 10 * time.Second

// header is the metadata key the token travels in.
const header = "authorization"

// Token is the stages' shared token, read from a file. Its methods are
// safe for concurrent use.
type Token struct {
	path string
	now  func() time.Time

	mu    sync.Mutex
	value string
	read  time.Time
}

// Open reads the token at path: an error when the file cannot be read or
// holds no token, so that a stage does not start unguarded by mistake.
func Open(path string) (*Token, error) {
	t := &Token{path: path, now: time.Now}
	if _, err := t.Value(); err != nil {
		return nil, err
	}
	return t, nil
}

// Value is the token: the file's content without surrounding white space,
// read again when the last read is older than ReloadEvery. When a later
// read fails, the last good token stays in use.
func (t *Token) Value() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if t.value != "" && now.Sub(t.read) < ReloadEvery {
		return t.value, nil
	}
	b, err := os.ReadFile(t.path)
	v := strings.TrimSpace(string(b))
	switch {
	case err != nil && t.value == "":
		return "", fmt.Errorf("stage token: %w", err)
	case err == nil && v == "" && t.value == "":
		return "", fmt.Errorf("stage token: %s is empty", t.path)
	case err == nil && v != "":
		t.value = v
	}
	t.read = now
	return t.value, nil
}

// errUnauthenticated is what a call without the right token gets.
var errUnauthenticated = status.Error(codes.Unauthenticated, "this stage answers only the pipeline's own stages: missing or wrong stage token")

// check admits a call whose metadata carries the token.
func (t *Token) check(ctx context.Context) error {
	want, err := t.Value()
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, got := range md.Get(header) {
		if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+want)) == 1 {
			return nil
		}
	}
	return errUnauthenticated
}

// ServerOptions make a gRPC server refuse every call without the token.
func (t *Token) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := t.check(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := t.check(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	}
}

// GetRequestMetadata implements credentials.PerRPCCredentials: the token
// as a bearer token on every call.
func (t *Token) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	v, err := t.Value()
	if err != nil {
		return nil, err
	}
	if v == "" {
		return nil, errors.New("stage token: empty")
	}
	return map[string]string{header: "Bearer " + v}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. The
// stages talk in plain text inside the pipeline's NetworkPolicy; the token
// proves membership, it does not hide the traffic.
func (t *Token) RequireTransportSecurity() bool { return false }

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

package store

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/recpipeline/recpipeline/runtime/internal/testredis"
)

// redisServer is the redis-server TestMain started, nil if it could not start
// one; redisErr says why.
var (
	redisServer *testredis.Server
	redisErr    error
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	redisServer, redisErr = testredis.Start()
	code := m.Run()
	if redisServer != nil {
		redisServer.Stop()
	}
	os.Exit(code)
}

// needRedis returns the test server's address. Without one it fails the test
// when CI is set, and skips it otherwise.
func needRedis(tb testing.TB) string {
	tb.Helper()
	return testredis.Need(tb, redisServer, redisErr)
}

// tempDir is t.TempDir for a store directory.
func tempDir(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "store")
}

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

package main

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// newClient returns a client for many concurrent requests to one host:
// conns idle connections are kept so that a closed loop of conns workers
// never dials again, and every request is bounded by timeout.
func newClient(conns int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		// The target is the benchmark's own server; never go through a proxy.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		// recserve does not compress; asking for gzip would only cost.
		DisableCompression: true,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// baseURL checks the -url flag and returns it without a trailing slash.
func baseURL(raw string) (string, error) {
	base, err := recclient.BaseURL(raw)
	if err != nil {
		return "", fmt.Errorf("-url %w", err)
	}
	return base, nil
}

// formatRate renders a per-second figure for the reports.
func formatRate(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

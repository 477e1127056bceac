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

// Package testport hands the runtime's tests a port for a process they start
// later (recserve, redis-server), where the test cannot keep a listener open.
//
// A port asked of the kernel with ":0" comes from the ephemeral range, and
// the kernel hands the same range out as the local port of every outgoing
// connection: between the test closing its probe and the child binding, any
// HTTP or Redis client on the machine can take it ("address already in
// use"). Ports are therefore drawn at random from below the ephemeral range,
// which the kernel never assigns by itself, and checked free on every
// interface before they are handed out.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// low is the lowest port handed out: above the well-known and most
// registered service ports.
const low = 20000

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Free returns a port no listener holds now, on loopback and on every
// interface, that this process has not handed out before.
func Free() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	high := ephemeralLow()
	for range 200 {
		port := low + rand.IntN(high-low)
		if given[port] || !bindable(port) {
			continue
		}
		given[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in [%d, %d) after 200 tries", low, high)
}

// bindable reports whether a listener can take port now, as recserve binds
// (":port") and as redis-server binds (loopback).
func bindable(port int) bool {
	for _, addr := range []string{":" + strconv.Itoa(port), "127.0.0.1:" + strconv.Itoa(port)} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// ephemeralLow is the start of the kernel's ephemeral range (Linux), 32768
// where it cannot be read.
func ephemeralLow() int {
	const fallback = 32768
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return fallback
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= low+1000 {
		return fallback
	}
	return n
}

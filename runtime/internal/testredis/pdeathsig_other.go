//go:build !linux

package testredis

import "os/exec"

// setParentDeathSignal has no equivalent here; Stop ends the server.
func setParentDeathSignal(*exec.Cmd) {}

//go:build !linux

package store

import "os/exec"

func setParentDeathSignal(*exec.Cmd) {}

package testredis

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal kills the server if the test binary dies first.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

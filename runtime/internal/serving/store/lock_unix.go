//go:build unix

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
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockLog takes an exclusive lock on the open log, held until the file is
// closed (or the process dies), so that two processes given one state
// directory — two pods on one volume during a rollout, say — never append
// to one log: the second fails to open.
func lockLog(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return fmt.Errorf("the event log %s is held by another store; one process at a time may open a state directory", f.Name())
	}
	if err != nil {
		return fmt.Errorf("failed to lock the event log %s: %w", f.Name(), err)
	}
	return nil
}

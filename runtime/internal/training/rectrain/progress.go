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

package rectrain

import (
	"fmt"
	"io"
	"math"
	"os"
	"time"
)

// progressEvery is how often a terminal's progress line is redrawn.
const progressEvery = time.Second

// meter reports one model's training: a line per epoch (epoch, mean loss,
// throughput, elapsed time and the ETA of the model's remaining epochs),
// and on a terminal the same line redrawn in place during an epoch.
type meter struct {
	w        io.Writer
	tty      bool
	what     string
	epochs   int
	perEpoch int // examples per epoch

	began     time.Time // of this process's part of the stage
	doneAtRun int       // examples done before this process started it
	epoch     int
	epochAt   time.Time
	examples  int // in this epoch
	lossSum   float64
	steps     int
	drawn     time.Time
}

func newMeter(o Options, stage, perEpoch, startEpoch int) *meter {
	m := &meter{w: o.Progress, what: stages[stage], epochs: o.stageEpochs(stage), perEpoch: perEpoch, began: time.Now(), doneAtRun: startEpoch * perEpoch}
	if f, ok := o.Progress.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			m.tty = true
		}
	}
	return m
}

func (m *meter) startEpoch(ep int) {
	m.epoch, m.epochAt, m.examples, m.lossSum, m.steps = ep, time.Now(), 0, 0, 0
}

// step records a batch of n examples and its loss.
func (m *meter) step(n int, loss float64) {
	m.examples += n
	m.lossSum += loss
	m.steps++
	if m.tty && time.Since(m.drawn) >= progressEvery {
		m.drawn = time.Now()
		fmt.Fprintf(m.w, "\r%s\x1b[K", m.line())
	}
}

// endEpoch prints the epoch's line and returns its mean loss.
func (m *meter) endEpoch() float64 {
	prefix := ""
	if m.tty {
		prefix = "\r\x1b[K"
	}
	fmt.Fprintf(m.w, "%s%s\n", prefix, m.line())
	return m.loss()
}

func (m *meter) loss() float64 { return m.lossSum / float64(max(m.steps, 1)) }

func (m *meter) line() string {
	el := time.Since(m.epochAt).Seconds()
	run := time.Since(m.began).Seconds()
	doneThisRun := m.epoch*m.perEpoch + m.examples - m.doneAtRun
	left := m.epochs*m.perEpoch - m.epoch*m.perEpoch - m.examples
	eta := "-"
	if doneThisRun > 0 {
		eta = time.Duration(math.Round(float64(left)/float64(doneThisRun)*run) * float64(time.Second)).Round(time.Second).String()
	}
	return fmt.Sprintf("%-11s epoch %d/%d  loss %.5f  %8.0f examples/s  %6.1fs  ETA %s",
		m.what, m.epoch+1, m.epochs, m.loss(), float64(m.examples)/math.Max(el, 1e-9), el, eta)
}

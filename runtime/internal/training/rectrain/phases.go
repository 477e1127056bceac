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
	"time"
)

// Phase is one step of a run, timed: loading, each model's training, the
// evaluation. PeakRSS is the process's resident high-water mark at its end
// (bytes; 0 where the system does not tell), so the phase whose PeakRSS
// first reaches the run's peak is the one that set it.
type Phase struct {
	Name    string
	Took    time.Duration
	PeakRSS int64
}

// NewPhase closes phase name, begun at began, now.
func NewPhase(name string, began time.Time) Phase {
	return Phase{Name: name, Took: time.Since(began), PeakRSS: PeakRSS()}
}

// String is the phase as rectrain prints it.
func (p Phase) String() string {
	return fmt.Sprintf("phase %s: %s, peak RSS %s", p.Name, p.Took.Round(time.Millisecond), FormatBytes(p.PeakRSS))
}

// phaseTimer appends each finished phase to a run's list and prints it.
type phaseTimer struct {
	w     io.Writer
	list  *[]Phase
	began time.Time
}

func newPhaseTimer(w io.Writer, list *[]Phase) *phaseTimer {
	return &phaseTimer{w: w, list: list, began: time.Now()}
}

// done closes the phase begun at the previous done (or at the timer's
// start) as name.
func (p *phaseTimer) done(name string) {
	ph := NewPhase(name, p.began)
	p.began = p.began.Add(ph.Took)
	*p.list = append(*p.list, ph)
	fmt.Fprintln(p.w, ph)
}

// FormatBytes writes n bytes in MiB or GiB; "unknown" for 0.
func FormatBytes(n int64) string {
	switch {
	case n <= 0:
		return "unknown"
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
}

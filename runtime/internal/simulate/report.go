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

package simulate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// NoArm names the lists answered without an arm: the config runs no
// experiments. Arm names are DNS labels, which it cannot be.
const NoArm = "(none)"

// numTypes sizes the arrays indexed by dataset.EventType.
const numTypes = int(dataset.Unfollow) + 1

// valued are the event types the objective counts: what the simulation
// posts. An impression's rate is 1.
var valued = append([]dataset.EventType{dataset.Impression}, Engagements...)

// Summary is what a run saw, overall and per arm.
type Summary struct {
	ElapsedS float64 `json:"elapsedS"`
	// Requests is the number of lists asked for, answered or not.
	Requests int `json:"requests"`
	// Failed is FailedLists + FailedPosts, what Options.MaxFailed bounds.
	Failed int `json:"failed"`
	// FailedLists counts the lists not answered: a non-2xx answer, a
	// transport error or timeout, or an answer without items.
	FailedLists int `json:"failedLists"`
	// FailedPosts counts the lists whose events the sink refused or did
	// not take; their impressions and events are left out of the figures.
	FailedPosts int `json:"failedPosts"`
	// Failures counts the failures by what failed and how: "lists 503",
	// "events 401", "lists timeout", "events error", "lists bad answer".
	Failures map[string]int `json:"failures,omitempty"`
	// Examples holds the first reason of each kind of Failures.
	Examples map[string]string `json:"examples,omitempty"`
	// UnknownItems counts the items served that the world does not have
	// (IDs that are not synth.ItemID of one of its items); they are
	// neither shown nor posted.
	UnknownItems int `json:"unknownItems"`
	// Weights are the objective's weights, by event type.
	Weights map[string]float64 `json:"weights"`
	// Arms holds the figures of each arm by name, NoArm for the lists
	// answered without one.
	Arms map[string]Arm `json:"arms"`
	// Total sums the arms.
	Total Arm `json:"total"`
	// Interrupted is set when the run was cut short.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Arm is what the lists of one arm earned.
type Arm struct {
	// Requests counts the lists the arm answered.
	Requests int `json:"requests"`
	// Impressions counts the items shown and posted.
	Impressions int `json:"impressions"`
	// Events counts the engagements posted, by type.
	Events map[string]int `json:"events"`
	// Rates are Events per impression.
	Rates map[string]float64 `json:"rates"`
	// Value is the objective per impression, Σ w·rate: what the arm's
	// users did.
	Value float64 `json:"value"`
	// TrueValue is the expected objective per impression, the mean of
	// Σ w·P(event) over the impressions: what Value tends to, without the
	// draw's noise.
	TrueValue float64 `json:"trueValue"`
	// FailedPosts counts the arm's lists whose events failed to post.
	FailedPosts int `json:"failedPosts"`
	// Degraded counts the arm's lists that went without a source or a
	// ranker stage (failed or late).
	Degraded int `json:"degraded"`
	// Revisions counts the arm's lists by the config revision that
	// served them.
	Revisions map[string]int `json:"revisions,omitempty"`
}

// armCounts is an arm's running tally.
type armCounts struct {
	requests    int
	counts      [numTypes]int
	value       float64
	failedPosts int
	degraded    int
	revisions   map[string]int
}

func (a *armCounts) add(b *armCounts) {
	a.requests += b.requests
	for t := range a.counts {
		a.counts[t] += b.counts[t]
	}
	a.value += b.value
	a.failedPosts += b.failedPosts
	a.degraded += b.degraded
	for r, n := range b.revisions {
		a.revisions[r] += n
	}
}

// stats is a run's running tally, shared by its workers.
type stats struct {
	o Options

	mu          sync.Mutex
	arms        map[string]*armCounts
	failedLists int
	failures    map[string]int
	examples    map[string]string
	unknown     int
}

func newStats(o Options) *stats {
	return &stats{o: o, arms: map[string]*armCounts{}, failures: map[string]int{}, examples: map[string]string{}}
}

// arm returns an arm's tally; the caller holds mu.
func (s *stats) arm(name string) *armCounts {
	if name == "" {
		name = NoArm
	}
	a := s.arms[name]
	if a == nil {
		a = &armCounts{revisions: map[string]int{}}
		s.arms[name] = a
	}
	return a
}

// served records a list whose events were posted.
func (s *stats) served(ans recclient.Answer, counts *[numTypes]int, value float64, unknown int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arm(ans.Arm)
	a.requests++
	a.revisions[ans.Revision]++
	if len(ans.Degraded) > 0 {
		a.degraded++
	}
	for t, n := range counts {
		a.counts[t] += n
	}
	a.value += value
	s.unknown += unknown
}

// failList records a list that was not answered.
func (s *stats) failList(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failedLists++
	s.fail("lists "+failureKind(err), err)
}

// failPost records a list answered whose events failed to post.
func (s *stats) failPost(arm string, err error, unknown int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arm(arm)
	a.requests++
	a.failedPosts++
	s.unknown += unknown
	s.fail("events "+failureKind(err), err)
}

func (s *stats) fail(label string, err error) {
	s.failures[label]++
	if _, seen := s.examples[label]; !seen {
		s.examples[label] = err.Error()
	}
}

// failureKind classifies a failed request: the status code of an error
// answer, "timeout", "bad answer" for a 200 that could not be read, or
// "error" for the other transport errors.
func failureKind(err error) string {
	var se *recclient.StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return strconv.Itoa(se.Code)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return "timeout"
	case errors.Is(err, recclient.ErrBadAnswer):
		return "bad answer"
	}
	return "error"
}

// startReports calls o.Progress every o.Report until stop is called.
func (s *stats) startReports(start time.Time) (stop func()) {
	if s.o.Report <= 0 || s.o.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(s.o.Report)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				s.o.Progress(s.summary(time.Since(start)))
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// summary computes the figures so far.
func (s *stats) summary(elapsed time.Duration) Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := Summary{
		ElapsedS:     elapsed.Seconds(),
		FailedLists:  s.failedLists,
		Failures:     maps.Clone(s.failures),
		Examples:     maps.Clone(s.examples),
		UnknownItems: s.unknown,
		Weights:      map[string]float64{},
		Arms:         map[string]Arm{},
	}
	for t, w := range s.o.Weights {
		sum.Weights[t.String()] = w
	}
	total := armCounts{revisions: map[string]int{}}
	for name, a := range s.arms {
		sum.Arms[name] = s.armFigures(a)
		total.add(a)
	}
	sum.Total = s.armFigures(&total)
	sum.FailedPosts = total.failedPosts
	sum.Failed = sum.FailedLists + sum.FailedPosts
	sum.Requests = total.requests + s.failedLists
	return sum
}

func (s *stats) armFigures(a *armCounts) Arm {
	imp := a.counts[dataset.Impression]
	f := Arm{
		Requests:    a.requests,
		Impressions: imp,
		Events:      map[string]int{},
		Rates:       map[string]float64{},
		FailedPosts: a.failedPosts,
		Degraded:    a.degraded,
		Revisions:   maps.Clone(a.revisions),
	}
	for _, t := range Engagements {
		f.Events[t.String()] = a.counts[t]
		if imp > 0 {
			f.Rates[t.String()] = float64(a.counts[t]) / float64(imp)
		}
	}
	if imp > 0 {
		for _, t := range valued {
			f.Value += s.o.Weights[t] * float64(a.counts[t]) / float64(imp)
		}
		f.TrueValue = a.value / float64(imp)
	}
	return f
}

// armNames returns the arms in name order.
func (s *Summary) armNames() []string {
	return slices.Sorted(maps.Keys(s.Arms))
}

// WriteText writes the summary as a table, one row per arm and a total
// row when there are several, with the failures and their first reasons.
func (s *Summary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "simulate: %d requests in %.1fs (%.1f/s), %d failed (%d lists, %d event posts), %d unknown items\n",
		s.Requests, s.ElapsedS, float64(s.Requests)/max(s.ElapsedS, 1e-9), s.Failed, s.FailedLists, s.FailedPosts, s.UnknownItems)
	fmt.Fprintf(w, "objective: Σ w·rate per impression with %s\n", s.weightsText())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"arm", "requests", "failed", "impressions"}
	for _, t := range Engagements {
		head = append(head, t.String())
	}
	head = append(head, "value", "true value")
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	row := func(name string, a Arm) {
		cells := []string{name, strconv.Itoa(a.Requests), strconv.Itoa(a.FailedPosts), strconv.Itoa(a.Impressions)}
		for _, t := range Engagements {
			cells = append(cells, fmt.Sprintf("%d %.2f%%", a.Events[t.String()], 100*a.Rates[t.String()]))
		}
		cells = append(cells, fmt.Sprintf("%.4f", a.Value), fmt.Sprintf("%.4f", a.TrueValue))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	names := s.armNames()
	for _, name := range names {
		row(name, s.Arms[name])
	}
	if len(names) != 1 {
		row("total", s.Total)
	}
	_ = tw.Flush()
	for _, k := range slices.Sorted(maps.Keys(s.Failures)) {
		fmt.Fprintf(w, "  %d %s, the first: %s\n", s.Failures[k], k, s.Examples[k])
	}
	if s.Interrupted {
		fmt.Fprintln(w, "interrupted: the figures cover the part that ran")
	}
}

// Line renders the summary on one line, for the progress reports: the
// totals, then each arm's requests, impressions, click rate and value.
func (s *Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "simulate %.0fs: %d requests, %d failed, %d unknown items", s.ElapsedS, s.Requests, s.Failed, s.UnknownItems)
	for _, name := range s.armNames() {
		a := s.Arms[name]
		fmt.Fprintf(&b, " | %s: %d req, %d imp, click %.2f%%, value %.4f (true %.4f)",
			name, a.Requests, a.Impressions, 100*a.Rates[dataset.Click.String()], a.Value, a.TrueValue)
	}
	return b.String()
}

func (s *Summary) weightsText() string {
	parts := make([]string, 0, len(s.Weights))
	for _, k := range slices.Sorted(maps.Keys(s.Weights)) {
		parts = append(parts, k+"="+strconv.FormatFloat(s.Weights[k], 'g', -1, 64))
	}
	return strings.Join(parts, ",")
}

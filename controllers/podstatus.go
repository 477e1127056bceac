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

package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// The pod-status reader: what the pods of one stage report about
// themselves. The config revision a pod serves is read from the pod itself:
// every recserve pod answers GET config.StatusPath on config.HTTPPort with a
// config.Status. Reading it over HTTP keeps the runtime's RBAC to get/watch
// of its own ConfigMap; a pod annotation would need every runtime pod to be
// allowed to patch pods. Why a pod fails is read from its container
// statuses, which carry the message the runtime left in its termination log.

// PodStatusReader reads the serving state of a stage pod.
type PodStatusReader interface {
	ReadStatus(ctx context.Context, pod *corev1.Pod) (*config.Status, error)
}

// HTTPStatusReader reads config.StatusPath from the pod's IP.
type HTTPStatusReader struct {
	// Client sends the requests; a client with a 2s timeout when nil.
	Client *http.Client
	// Port of the pod's HTTP server; config.HTTPPort when zero.
	Port int
}

// maxStatusBytes bounds a status answer.
const maxStatusBytes = 64 << 10

// ReadStatus implements PodStatusReader.
func (r *HTTPStatusReader) ReadStatus(ctx context.Context, pod *corev1.Pod) (*config.Status, error) {
	if pod.Status.PodIP == "" {
		return nil, fmt.Errorf("pod %s has no IP", pod.Name)
	}
	client := r.Client
	if client == nil {
		// A pod's answer is its own: a redirect elsewhere is not followed.
		client = &http.Client{
			Timeout:       2 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	port := r.Port
	if port == 0 {
		port = config.HTTPPort
	}
	url := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + config.StatusPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("failed to build status request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to read status of pod %s: %w", pod.Name, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to read status of pod %s: HTTP %d", pod.Name, resp.StatusCode)
	}
	var s config.Status
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxStatusBytes)).Decode(&s); err != nil {
		return nil, fmt.Errorf("failed to decode status of pod %s: %w", pod.Name, err)
	}
	return &s, nil
}

// statusReadConcurrency bounds the status reads in flight per reconcile.
const statusReadConcurrency = 16

// revisionUnknown counts the ready pods whose status could not be read or
// names no config revision.
const revisionUnknown = "unknown"

// podStatuses is what the pods of one stage report.
type podStatuses struct {
	// Revisions counts ready pods by the config revision they serve.
	Revisions map[string]int32
	// Problems describe why pods of the current template fail.
	Problems []string
	// Rejections describe pods that refused the current config.
	Rejections []string
	// Shadow sums, by ranker stage, the ready pods' comparisons of a
	// shadow model with the served one.
	Shadow map[string]config.ShadowCounts
	// Sources sums, by retrieval source, what the ready frontend pods
	// report of their latest requests.
	Sources map[string]config.SourceCounts
	// Precompute is what the ready frontend pods report of their
	// precomputed lists; nil when none reports.
	Precompute *precomputeReport
}

// precomputeReport sums what the frontend pods report of their
// precomputed lists.
type precomputeReport struct {
	// LastRun is, of the finished runs the pods report, the one that
	// finished last.
	LastRun *config.PrecomputeRun
	// Hits and Misses sum the pods' counts.
	Hits, Misses int64
}

// readPodStatuses counts the ready pods of one stage by the config revision
// they serve, collects the problems of the pods that run deployRevision's
// template, and the refusals of revision.
func readPodStatuses(ctx context.Context, reader PodStatusReader, pods []corev1.Pod, revision, deployRevision string) podStatuses {
	var mu sync.Mutex
	out := podStatuses{Revisions: map[string]int32{}}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(statusReadConcurrency)
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		if pod.Annotations[AnnotationDeployRevision] == deployRevision {
			if p := podProblem(pod); p != "" {
				mu.Lock()
				out.Problems = append(out.Problems, p)
				mu.Unlock()
			}
		}
		if !podReady(pod) {
			continue
		}
		g.Go(func() error {
			served, rejection, st := readServedRevision(ctx, reader, pod, revision)
			mu.Lock()
			defer mu.Unlock()
			out.Revisions[served]++
			if rejection != "" {
				out.Rejections = append(out.Rejections, rejection)
			}
			if st != nil {
				out.addShadow(st.Shadow)
				out.addSources(st.Sources)
				out.addPrecompute(st.Precompute)
			}
			return nil
		})
	}
	_ = g.Wait() // the reads report failures as the unknown revision
	out.Revisions = capRevisions(out.Revisions)
	return out
}

// maxRevisions is how many revisions a stage's status lists (the CRD's
// status.stages[].revisions maxItems).
const maxRevisions = 16

// capRevisions keeps the maxRevisions-1 revisions most pods serve and
// counts the pods of the others as unknown, so that pods reporting many
// revisions cannot make the status unwritable.
func capRevisions(m map[string]int32) map[string]int32 {
	if len(m) <= maxRevisions {
		return m
	}
	revs := make([]string, 0, len(m))
	for r := range m {
		if r != revisionUnknown {
			revs = append(revs, r)
		}
	}
	sort.Slice(revs, func(i, j int) bool {
		if m[revs[i]] != m[revs[j]] {
			return m[revs[i]] > m[revs[j]]
		}
		return revs[i] < revs[j]
	})
	out := map[string]int32{revisionUnknown: m[revisionUnknown]}
	for i, r := range revs {
		if i < maxRevisions-1 {
			out[r] = m[r]
		} else {
			out[revisionUnknown] += m[r]
		}
	}
	return out
}

// revisionRE bounds what the status repeats of a pod's revision: at most
// the CRD's 64 characters of a label-like alphabet (config.Revision is 16
// hex digits).
var revisionRE = regexp.MustCompile(`^[0-9A-Za-z._-]{1,64}$`)

// maxRejectionBytes bounds the refusal reason a pod reports that the
// status repeats.
const maxRejectionBytes = 1024

// addShadow adds one pod's shadow comparisons.
// maxReportedSources bounds the sources a stage's pods may report between
// them (the config's sources are at most config.MaxSources).
const maxReportedSources = 2 * config.MaxSources

// addSources adds a pod's source counts; counts a recserve does not
// report (negative, more failures than requests, a window larger than
// config.SourceWindow) and names past maxReportedSources are left out.
func (p *podStatuses) addSources(sources map[string]config.SourceCounts) {
	for name, c := range sources {
		if c.Requests < 0 || c.Requests > config.SourceWindow || c.Failed < 0 || c.Failed > c.Requests {
			continue
		}
		if p.Sources == nil {
			p.Sources = map[string]config.SourceCounts{}
		}
		sum, ok := p.Sources[name]
		if !ok && len(p.Sources) >= maxReportedSources {
			continue
		}
		sum.Requests += c.Requests
		sum.Failed += c.Failed
		p.Sources[name] = sum
	}
}

// addPrecompute adds a pod's precompute report: its counts, and its last
// run when it finished after the others' and is one recserve reports
// (validRun); a report with negative counts is left out.
func (p *podStatuses) addPrecompute(c *config.PrecomputeCounts) {
	if c == nil || c.Hits < 0 || c.Misses < 0 {
		return
	}
	if p.Precompute == nil {
		p.Precompute = &precomputeReport{}
	}
	p.Precompute.Hits += c.Hits
	p.Precompute.Misses += c.Misses
	run := c.LastRun
	if run == nil || !validRun(run) {
		return
	}
	if last := p.Precompute.LastRun; last == nil || run.Finished.After(last.Finished) {
		r := *run
		r.Error = truncateTo(r.Error, maxBatchMessageBytes)
		p.Precompute.LastRun = &r
	}
}

func (p *podStatuses) addShadow(shadow map[string]config.ShadowCounts) {
	for stage, c := range shadow {
		if p.Shadow == nil {
			p.Shadow = map[string]config.ShadowCounts{}
		}
		sum, ok := p.Shadow[stage]
		if ok && sum.Model != c.Model {
			continue // a pod still on the previous shadow model
		}
		sum.Model = c.Model
		sum.Compared += c.Compared
		sum.Overlap += c.Overlap
		sum.Spearman += c.Spearman
		p.Shadow[stage] = sum
	}
}

// readServedRevision asks a ready pod which config revision it serves,
// revisionUnknown if it does not say, describes its refusal of revision if
// it refused it, and returns its shadow comparisons.
func readServedRevision(ctx context.Context, reader PodStatusReader, pod *corev1.Pod, revision string) (served, rejection string, status *config.Status) {
	s, err := reader.ReadStatus(ctx, pod)
	if err != nil || !revisionRE.MatchString(s.ConfigRevision) {
		// Unread, or a revision no recserve reports: unknown, rather than
		// a value the status could not hold.
		return revisionUnknown, "", nil
	}
	if s.RejectedRevision == revision && s.Rejected != "" {
		why := s.Rejected
		if len(why) > maxRejectionBytes {
			why = strings.ToValidUTF8(why[:maxRejectionBytes], "") + "…"
		}
		rejection = fmt.Sprintf("pod %s refused config revision %s: %s", pod.Name, revision, why)
	}
	return s.ConfigRevision, rejection, s
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podProblem describes why a pod's container keeps failing, with the
// message the runtime left in its termination log, or why the pod cannot
// be scheduled for a volume claim (a claim the spec names that does not
// exist or cannot bind); empty if none of that.
func podProblem(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse &&
			c.Reason == corev1.PodReasonUnschedulable && strings.Contains(c.Message, "persistentvolumeclaim") {
			return fmt.Sprintf("pod %s: %s: %s", pod.Name, c.Reason, c.Message)
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Ready {
			continue
		}
		waiting := cs.State.Waiting
		last := cs.LastTerminationState.Terminated
		switch {
		case waiting != nil && isFailureReason(waiting.Reason):
			msg := waiting.Message
			if last != nil && last.Message != "" {
				msg = last.Message
			}
			return fmt.Sprintf("pod %s: %s: %s", pod.Name, waiting.Reason, msg)
		case last != nil && last.ExitCode != 0 && cs.RestartCount > 0:
			return fmt.Sprintf("pod %s: exited with code %d: %s", pod.Name, last.ExitCode, last.Message)
		}
	}
	return ""
}

func isFailureReason(reason string) bool {
	switch reason {
	case "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName",
		"CreateContainerConfigError", "CreateContainerError", "RunContainerError":
		return true
	}
	return false
}

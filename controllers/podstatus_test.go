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
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/recpipeline/recpipeline/runtime/config"
)

func TestHTTPStatusReader(t *testing.T) {
	tests := map[string]struct {
		handler http.HandlerFunc
		noIP    bool
		want    *config.Status
		wantErr string
	}{
		"a pod answering its status": {
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"configRevision":"abc123","deployRevision":"def456","stage":"retrieval","rejectedRevision":"bad1","rejected":"unknown model"}`))
			},
			want: &config.Status{ConfigRevision: "abc123", DeployRevision: "def456", Stage: "retrieval", RejectedRevision: "bad1", Rejected: "unknown model"},
		},
		"a server error": {
			handler: func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
			wantErr: "HTTP 500",
		},
		"garbage instead of JSON": {
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("<html>not json</html>")) },
			wantErr: "failed to decode status of pod web-0",
		},
		"an answer larger than the bound": {
			handler: func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(`{"configRevision":"` + strings.Repeat("a", 2*maxStatusBytes) + `"}`))
			},
			wantErr: "failed to decode status of pod web-0",
		},
		"a redirect is not followed": {
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://198.51.100.1/v1/status", http.StatusFound)
			},
			wantErr: "HTTP 302",
		},
		"a pod without an IP is not asked": {
			handler: func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(`{"configRevision":"abc123"}`)) },
			noIP:    true,
			wantErr: "pod web-0 has no IP",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				if r.Method != http.MethodGet || r.URL.Path != config.StatusPath {
					http.NotFound(w, r)
					return
				}
				tc.handler(w, r)
			}))
			defer srv.Close()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0"}}
			if !tc.noIP {
				pod.Status.PodIP = "127.0.0.1"
			}
			reader := &HTTPStatusReader{Port: srv.Listener.Addr().(*net.TCPAddr).Port}

			got, err := reader.ReadStatus(context.Background(), pod)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("status = %+v alongside the error", got)
				}
			} else {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("status = %+v, want %+v", got, tc.want)
				}
			}
			if n := hits.Load(); tc.noIP && n != 0 {
				t.Errorf("server got %d requests for a pod without an IP", n)
			} else if !tc.noIP && n != 1 {
				t.Errorf("server got %d requests, want 1", n)
			}
		})
	}
}

func TestPodProblem(t *testing.T) {
	tests := map[string]struct {
		status corev1.ContainerStatus
		want   string
	}{
		"crash loop reports the termination message": {
			status: corev1.ContainerStatus{
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 5m0s restarting failed container"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "failed to load model mtml: no such file"}},
				RestartCount:         4,
			},
			want: "pod p-0: CrashLoopBackOff: failed to load model mtml: no such file",
		},
		"crash loop without a termination message reports the kubelet's": {
			status: corev1.ContainerStatus{
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137}},
				RestartCount:         1,
			},
			want: "pod p-0: CrashLoopBackOff: back-off 10s",
		},
		"image pull back-off": {
			status: corev1.ContainerStatus{
				State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "recserve:nope"`}},
			},
			want: `pod p-0: ImagePullBackOff: Back-off pulling image "recserve:nope"`,
		},
		"exited non-zero and restarted": {
			status: corev1.ContainerStatus{
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Message: "catalog is empty"}},
				RestartCount:         1,
			},
			want: "pod p-0: exited with code 2: catalog is empty",
		},
		"a ready container is fine whatever its past": {
			status: corev1.ContainerStatus{
				Ready:                true,
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "old"}},
				RestartCount:         3,
			},
		},
		"running and starting up": {
			status: corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		},
		"being created": {
			status: corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
		},
		"a clean exit is no failure": {
			status: corev1.ContainerStatus{
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}},
				RestartCount:         1,
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-0"}}
			pod.Status.ContainerStatuses = []corev1.ContainerStatus{tc.status}
			if got := podProblem(pod); got != tc.want {
				t.Errorf("podProblem = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPodProblemMissingClaim: a pod the scheduler cannot place because a
// claim the pipeline names does not exist is a problem the status reports
// (before, the pipeline said Degraded=False); one waiting for room is not.
func TestPodProblemMissingClaim(t *testing.T) {
	unschedulable := func(msg string) *corev1.Pod {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p-0"}}
		pod.Status.Phase = corev1.PodPending
		pod.Status.Conditions = []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: msg,
		}}
		return pod
	}
	missing := `0/1 nodes are available: persistentvolumeclaim "explore-data" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.`
	if got, want := podProblem(unschedulable(missing)), "pod p-0: Unschedulable: "+missing; got != want {
		t.Errorf("podProblem = %q, want %q", got, want)
	}
	if got := podProblem(unschedulable("0/1 nodes are available: 1 Insufficient cpu.")); got != "" {
		t.Errorf("a pod waiting for room is reported: %q", got)
	}
}

// stubStatusReader answers for pods by name and records which it was asked.
type stubStatusReader struct {
	mu      sync.Mutex
	answers map[string]config.Status
	asked   []string
}

func (s *stubStatusReader) ReadStatus(_ context.Context, pod *corev1.Pod) (*config.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, pod.Name)
	a, ok := s.answers[pod.Name]
	if !ok {
		return nil, errors.New("connection refused")
	}
	return &a, nil
}

const (
	obsDeployRev    = "deploy-new"
	obsOldDeployRev = "deploy-old"
)

type podOpt func(*corev1.Pod)

func stagePod(name string, opts ...podOpt) corev1.Pod {
	pod := corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{AnnotationDeployRevision: obsDeployRev}},
		Status: corev1.PodStatus{
			PodIP:      "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, o := range opts {
		o(&pod)
	}
	return pod
}

func notReady(p *corev1.Pod) {
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
}

func terminating(p *corev1.Pod) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

func oldTemplate(p *corev1.Pod) { p.Annotations[AnnotationDeployRevision] = obsOldDeployRev }

func crashLooping(p *corev1.Pod) {
	notReady(p)
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:                 "recserve",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: "no model"}},
		RestartCount:         3,
	}}
}

func TestReadPodStatuses(t *testing.T) {
	tests := map[string]struct {
		pods          []corev1.Pod
		answers       map[string]config.Status
		wantRevisions map[string]int32
		wantProblems  []string
		wantRejected  []string
		wantAsked     []string
	}{
		"ready pods counted by revision": {
			pods: []corev1.Pod{stagePod("a"), stagePod("b"), stagePod("c")},
			answers: map[string]config.Status{
				"a": {ConfigRevision: curRev}, "b": {ConfigRevision: curRev}, "c": {ConfigRevision: oldRev},
			},
			wantRevisions: map[string]int32{curRev: 2, oldRev: 1},
			wantAsked:     []string{"a", "b", "c"},
		},
		"pods that do not answer or name no revision are unknown": {
			pods:          []corev1.Pod{stagePod("a"), stagePod("b"), stagePod("c")},
			answers:       map[string]config.Status{"a": {ConfigRevision: curRev}, "b": {Stage: "retrieval"}},
			wantRevisions: map[string]int32{curRev: 1, revisionUnknown: 2},
			wantAsked:     []string{"a", "b", "c"},
		},
		"a revision no recserve reports is unknown": {
			pods: []corev1.Pod{stagePod("a"), stagePod("b")},
			answers: map[string]config.Status{
				"a": {ConfigRevision: curRev}, "b": {ConfigRevision: strings.Repeat("f", 65)},
			},
			wantRevisions: map[string]int32{curRev: 1, revisionUnknown: 1},
			wantAsked:     []string{"a", "b"},
		},
		"not-ready and terminating pods are not counted": {
			pods: []corev1.Pod{stagePod("a"), stagePod("b", notReady), stagePod("c", terminating), stagePod("d", func(p *corev1.Pod) { p.Status.Conditions = nil })},
			answers: map[string]config.Status{
				"a": {ConfigRevision: curRev}, "b": {ConfigRevision: oldRev}, "c": {ConfigRevision: oldRev}, "d": {ConfigRevision: oldRev},
			},
			wantRevisions: map[string]int32{curRev: 1},
			wantAsked:     []string{"a"},
		},
		"a pod that refused the current revision is a problem": {
			pods: []corev1.Pod{stagePod("a"), stagePod("b")},
			answers: map[string]config.Status{
				"a": {ConfigRevision: oldRev, RejectedRevision: curRev, Rejected: `live.secondStage.model: "x" is not a model`},
				"b": {ConfigRevision: curRev},
			},
			wantRevisions: map[string]int32{curRev: 1, oldRev: 1},
			wantRejected:  []string{`pod a refused config revision rev-current: live.secondStage.model: "x" is not a model`},
			wantAsked:     []string{"a", "b"},
		},
		"a pod that refused an older revision is no problem": {
			pods:          []corev1.Pod{stagePod("a")},
			answers:       map[string]config.Status{"a": {ConfigRevision: curRev, RejectedRevision: oldRev, Rejected: "bad weights"}},
			wantRevisions: map[string]int32{curRev: 1},
			wantAsked:     []string{"a"},
		},
		"failing pods of the current template are problems, of the old one not": {
			pods: []corev1.Pod{
				stagePod("new-0", crashLooping),
				stagePod("old-0", crashLooping, oldTemplate),
				stagePod("gone-0", crashLooping, terminating),
				stagePod("old-1", oldTemplate),
			},
			answers:       map[string]config.Status{"old-1": {ConfigRevision: curRev}},
			wantRevisions: map[string]int32{curRev: 1},
			wantProblems:  []string{"pod new-0: CrashLoopBackOff: no model"},
			wantAsked:     []string{"old-1"},
		},
		"no pods": {
			wantRevisions: map[string]int32{},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			reader := &stubStatusReader{answers: tc.answers}
			got := readPodStatuses(context.Background(), reader, tc.pods, curRev, obsDeployRev)
			revisions, problems, rejected := got.Revisions, got.Problems, got.Rejections
			if !reflect.DeepEqual(revisions, tc.wantRevisions) {
				t.Errorf("revisions = %v, want %v", revisions, tc.wantRevisions)
			}
			sort.Strings(problems)
			if !reflect.DeepEqual(problems, tc.wantProblems) {
				t.Errorf("problems = %q, want %q", problems, tc.wantProblems)
			}
			if !reflect.DeepEqual(rejected, tc.wantRejected) {
				t.Errorf("rejections = %q, want %q", rejected, tc.wantRejected)
			}
			sort.Strings(reader.asked)
			if !reflect.DeepEqual(reader.asked, tc.wantAsked) {
				t.Errorf("asked %v, want %v", reader.asked, tc.wantAsked)
			}
		})
	}
}

// TestCapRevisions: pods reporting more revisions than the status holds
// keep the most served ones and fold the rest into unknown, so that the
// status stays writable (before, it froze with observedGeneration stuck).
func TestCapRevisions(t *testing.T) {
	m := map[string]int32{revisionUnknown: 1}
	for i := range 30 {
		m[fmt.Sprintf("%016x", i)] = int32(1 + i%3)
	}
	got := capRevisions(m)
	if len(got) != maxRevisions {
		t.Fatalf("%d revisions, want %d", len(got), maxRevisions)
	}
	var total, want int32
	for _, n := range m {
		want += n
	}
	keptMin, droppedMax := int32(1<<30), int32(0)
	for r, n := range got {
		total += n
		if r != revisionUnknown {
			keptMin = min(keptMin, n)
		}
	}
	for r, n := range m {
		if _, ok := got[r]; !ok {
			droppedMax = max(droppedMax, n)
		}
	}
	if droppedMax > keptMin {
		t.Errorf("a folded revision has %d pods, a kept one %d: want the most served kept", droppedMax, keptMin)
	}
	if total != want {
		t.Errorf("%d pods counted, want %d", total, want)
	}
}

// TestAddSourcesSumsPodsWithinBounds: the frontends' source counts are
// summed; counts no recserve reports (negative, more failures than
// requests) and names past the bound are left out.
func TestAddSourcesSumsPodsWithinBounds(t *testing.T) {
	var p podStatuses
	p.addSources(map[string]config.SourceCounts{"for-you": {Requests: 1000, Failed: 10}, "bad": {Requests: 5, Failed: 6}, "neg": {Requests: -1}, "huge": {Requests: 1 << 62}})
	p.addSources(map[string]config.SourceCounts{"for-you": {Requests: 400, Failed: 40}})
	if want := map[string]config.SourceCounts{"for-you": {Requests: 1400, Failed: 50}}; !reflect.DeepEqual(p.Sources, want) {
		t.Errorf("sums %v, want %v", p.Sources, want)
	}
	flood := map[string]config.SourceCounts{}
	for i := range 10 * maxReportedSources {
		flood[fmt.Sprintf("s%d", i)] = config.SourceCounts{Requests: 1}
	}
	p.addSources(flood)
	if len(p.Sources) != maxReportedSources {
		t.Errorf("%d sources kept, want at most %d", len(p.Sources), maxReportedSources)
	}
}

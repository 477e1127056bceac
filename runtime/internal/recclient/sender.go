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

package recclient

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
)

// Names names the fields of an options struct in the errors of its
// checks; a field it leaves out keeps its Go name. recbench names them
// after its flags.
type Names map[string]string

// Of is the name of field.
func (n Names) Of(field string) string {
	if name, ok := n[field]; ok {
		return name
	}
	return field
}

// SendOptions configure a Sender.
type SendOptions struct {
	// Batch is the most events per POST; 1000 by default, at most
	// MaxEvents.
	Batch int
	// MaxBody is the most bytes per POST; MaxBodyBytes by default, at
	// least 1024. A batch is sent early rather than grow past it.
	MaxBody int
	// Concurrency is the number of ordered senders; each user's events
	// all go through one of them. 2 by default, at most 256.
	Concurrency int
}

// Default fills in the defaults of the fields left at 0 and checks the
// options; its errors call the fields by names.
func (o *SendOptions) Default(names Names) error {
	o.Batch = cmp.Or(o.Batch, 1000)
	o.MaxBody = cmp.Or(o.MaxBody, MaxBodyBytes)
	o.Concurrency = cmp.Or(o.Concurrency, 2)
	switch {
	case o.Batch < 1 || o.Batch > MaxEvents:
		return fmt.Errorf("%s %d must be between 1 and %d", names.Of("Batch"), o.Batch, MaxEvents)
	case o.MaxBody < 1024:
		return fmt.Errorf("%s %d must be at least 1024", names.Of("MaxBody"), o.MaxBody)
	case o.Concurrency < 1 || o.Concurrency > 256:
		return fmt.Errorf("%s %d must be between 1 and 256", names.Of("Concurrency"), o.Concurrency)
	}
	return nil
}

// Sent counts what the server acknowledged.
type Sent struct {
	Follows int // events added as follows (Sender.Add's isFollow)
	Events  int // the other events
	Batches int // POSTs
}

// pendingBatch is one POST in the making, with what it holds for the
// counts and for error messages.
type pendingBatch struct {
	enc     Encoder
	follows int
	events  int
	first   string // the source row of the first event, for errors
}

func (b *pendingBatch) clear() {
	b.enc.Reset()
	b.follows, b.events, b.first = 0, 0, ""
}

// shard is an ordered sender: batches reach the server one at a time, in
// the order they were filled.
type shard struct {
	cur  *pendingBatch
	full chan *pendingBatch
	free chan *pendingBatch
}

// Sender posts events to /v1/events in batches through ordered shards. A
// user's events always go through the same shard, and a shard's batches
// reach the server one at a time in the order they were filled, so the
// server sees each user's events in the order they were added. The first
// failure cancels the sending. Add is for one goroutine.
type Sender struct {
	ctx       context.Context
	cancel    context.CancelFunc
	client    *http.Client
	eventsURL string
	batch     int // most events per POST
	maxBody   int // most bytes per POST
	shards    []*shard
	wg        sync.WaitGroup

	mu       sync.Mutex
	firstBad error
	sent     Sent
}

// NewSender starts o.Concurrency ordered senders to eventsURL (base +
// "/v1/events"), each posting at most o.Batch events and o.MaxBody bytes
// at a time; o is as SendOptions.Default leaves it. Finish must be called
// to release them.
func NewSender(ctx context.Context, client *http.Client, eventsURL string, o SendOptions) *Sender {
	s := &Sender{client: client, eventsURL: eventsURL, batch: o.Batch, maxBody: o.MaxBody}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.shards = make([]*shard, o.Concurrency)
	for i := range s.shards {
		sh := &shard{full: make(chan *pendingBatch, 1), free: make(chan *pendingBatch, 2)}
		sh.free <- new(pendingBatch)
		sh.free <- new(pendingBatch)
		s.shards[i] = sh
		s.wg.Add(1)
		go s.run(sh)
	}
	return s
}

// run posts a shard's batches until its channel is closed.
func (s *Sender) run(sh *shard) {
	defer s.wg.Done()
	for b := range sh.full {
		if s.ctx.Err() == nil {
			if err := PostEvents(s.ctx, s.client, s.eventsURL, b.enc.Body(), b.enc.Len()); err != nil {
				if s.ctx.Err() == nil || !errors.Is(err, context.Canceled) {
					s.fail(fmt.Errorf("batch starting at %s: %w", b.first, err))
				}
			} else {
				s.mu.Lock()
				s.sent.Follows += b.follows
				s.sent.Events += b.events
				s.sent.Batches++
				s.mu.Unlock()
			}
		}
		b.clear()
		sh.free <- b
	}
}

func (s *Sender) fail(err error) {
	s.mu.Lock()
	if s.firstBad == nil {
		s.firstBad = err
	}
	s.mu.Unlock()
	s.cancel()
}

// flush hands a shard's batch to its sender.
func (s *Sender) flush(sh *shard) error {
	if sh.cur == nil || sh.cur.enc.Len() == 0 {
		return nil
	}
	select {
	case sh.full <- sh.cur:
		sh.cur = nil
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// Add routes one event to its user's shard; isFollow counts it among the
// follows of Sent, and row names its source row for errors and is called
// only for the first event of a batch. It fails once the sending has
// failed or its context is done.
func (s *Sender) Add(e *Event, isFollow bool, row func() string) error {
	sh := s.shards[userShard(e.User, len(s.shards))]
	for {
		if sh.cur == nil {
			select {
			case sh.cur = <-sh.free:
				sh.cur.clear()
			case <-s.ctx.Done():
				return s.ctx.Err()
			}
		}
		if sh.cur.enc.Len() < s.batch && sh.cur.enc.Add(e, s.maxBody) {
			break
		}
		if err := s.flush(sh); err != nil {
			return err
		}
	}
	if sh.cur.first == "" {
		sh.cur.first = row()
	}
	if isFollow {
		sh.cur.follows++
	} else {
		sh.cur.events++
	}
	if sh.cur.enc.Len() == s.batch {
		return s.flush(sh)
	}
	return nil
}

// Finish sends what is left unless the caller failed with readErr, waits
// for the senders and returns what the server acknowledged with the first
// failure: the server's before the caller's, which is often its echo.
func (s *Sender) Finish(readErr error) (Sent, error) {
	if readErr == nil {
		for _, sh := range s.shards {
			if readErr = s.flush(sh); readErr != nil {
				break
			}
		}
	}
	for _, sh := range s.shards {
		close(sh.full)
	}
	s.wg.Wait()
	s.cancel()
	if s.firstBad != nil {
		return s.sent, s.firstBad
	}
	return s.sent, readErr
}

// userShard maps a user to one of n shards (FNV-1a), so that all of a
// user's events go through the same ordered sender.
func userShard(user string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(user); i++ {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// SendFollows adds the follow graph of the world in dir, if it has one
// (follows.jsonl, plain or gzip), to s as follow events at graphTime, and
// returns the rows skipped in lenient mode.
func SendFollows(s *Sender, dir string, ropts dataset.ReadOptions, graphTime time.Time) (skipped int, err error) {
	follows, err := openFollows(dir, ropts)
	if err != nil || follows == nil {
		return 0, err
	}
	defer follows.Close()
	var line int
	row := func() string { return fmt.Sprintf("follows row %d", line) }
	for {
		f, err := follows.Next()
		if err == io.EOF {
			return follows.Report().Skipped, nil
		}
		if err != nil {
			return follows.Report().Skipped, fmt.Errorf("failed to read the follow graph: %w", err)
		}
		line++
		e := Event{User: f.User, Author: f.Author, Type: dataset.Follow.String(), Time: graphTime}
		if err := s.Add(&e, true, row); err != nil {
			return follows.Report().Skipped, err
		}
	}
}

// errNoFile is WorldFile's answer for a file the world does not have.
var errNoFile = errors.New("no such file in the world")

// WorldFile finds name, or name.gz, in the world directory dir.
func WorldFile(dir, name string) (string, error) {
	for _, p := range []string{filepath.Join(dir, name), filepath.Join(dir, name+".gz")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("failed to stat %s: %w", p, err)
		}
	}
	return "", fmt.Errorf("%s: %s (nor %s.gz): %w", dir, name, name, errNoFile)
}

// openFollows opens the follow graph, or returns nil when the world has
// none (a log converted from MovieLens, say).
func openFollows(dir string, ropts dataset.ReadOptions) (*dataset.Reader[dataset.FollowEdge], error) {
	p, err := WorldFile(dir, "follows.jsonl")
	if errors.Is(err, errNoFile) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r, err := dataset.OpenFollows(p, ropts)
	if err != nil {
		return nil, fmt.Errorf("failed to open the follow graph: %w", err)
	}
	return r, nil
}

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

package main

import (
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

	"github.com/recpipeline/recpipeline/runtime/dataset"
)

// replayOptions configure a replay.
type replayOptions struct {
	// URL of recserve, without a path.
	URL string
	// Data is the world directory: follows.jsonl (optional) and
	// events.jsonl, plain or gzip (".gz").
	Data string
	// Batch is the most events per POST; 1000 by default, at most 10000
	// (the server's limit).
	Batch int
	// MaxBody is the most bytes per POST; 4 MiB (the server's limit) by
	// default. A batch is sent early rather than grow past it.
	MaxBody int
	// Concurrency is the number of ordered senders; each user's events
	// all go through one of them. 2 by default.
	Concurrency int
	// MaxEvents bounds the rows of events.jsonl sent; 0 sends them all.
	// The follow graph is always sent whole.
	MaxEvents int
	// Lenient skips bad rows of the files instead of failing on the first.
	Lenient bool
}

func (o *replayOptions) defaults() error {
	if o.Batch == 0 {
		o.Batch = 1000
	}
	if o.MaxBody == 0 {
		o.MaxBody = serverMaxBodyBytes
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2
	}
	switch {
	case o.Batch < 1 || o.Batch > serverMaxEvents:
		return fmt.Errorf("-batch %d must be between 1 and %d", o.Batch, serverMaxEvents)
	case o.MaxBody < 1024:
		return fmt.Errorf("-max-body %d must be at least 1024", o.MaxBody)
	case o.Concurrency < 1 || o.Concurrency > 256:
		return fmt.Errorf("-concurrency %d must be between 1 and 256", o.Concurrency)
	case o.MaxEvents < 0:
		return fmt.Errorf("-max-events %d must not be negative", o.MaxEvents)
	case o.Data == "":
		return errors.New("-data is required")
	}
	return nil
}

// replayResult counts what the server acknowledged.
type replayResult struct {
	Follows int
	Events  int
	Batches int
	Skipped int // bad rows skipped in lenient mode
	Elapsed time.Duration
}

// replayBatch is one POST in the making, with what it holds for the counts
// and for error messages.
type replayBatch struct {
	enc     batchEncoder
	follows int
	events  int
	first   string // the source row of the first event, for errors
}

func (b *replayBatch) clear() {
	b.enc.reset()
	b.follows, b.events, b.first = 0, 0, ""
}

// replayShard is an ordered sender: batches reach the server one at a
// time, in the order they were filled.
type replayShard struct {
	cur  *replayBatch
	full chan *replayBatch
	free chan *replayBatch
}

// replay posts the world's follow graph, as follow events stamped with the
// log's first time, then its log in order, through a sender: the server
// sees each user's events in file order whatever the concurrency. The
// first failure stops the replay.
func replay(ctx context.Context, client *http.Client, o replayOptions) (replayResult, error) {
	var res replayResult
	if err := o.defaults(); err != nil {
		return res, err
	}
	base, err := baseURL(o.URL)
	if err != nil {
		return res, err
	}
	ropts := dataset.ReadOptions{Strict: !o.Lenient}

	eventsPath, err := worldFile(o.Data, "events.jsonl")
	if err != nil {
		return res, err
	}
	events, err := dataset.OpenEvents(eventsPath, ropts)
	if err != nil {
		return res, fmt.Errorf("failed to open the log: %w", err)
	}
	defer events.Close()
	// The first event dates the follow graph: follows.jsonl is the graph
	// at the start of the log.
	first, firstErr := events.Next()
	if firstErr != nil && firstErr != io.EOF {
		return res, fmt.Errorf("failed to read the log: %w", firstErr)
	}
	graphTime := first.Time
	if firstErr == io.EOF {
		graphTime = time.Now().UTC()
	}

	start := time.Now()
	s := newSender(ctx, client, base+"/v1/events", o.Batch, o.MaxBody, o.Concurrency)
	readErr := func() error {
		skipped, err := sendFollows(s, o.Data, ropts, graphTime)
		res.Skipped += skipped
		if err != nil {
			return err
		}
		var line int
		row := func() string { return fmt.Sprintf("events row %d", line) }
		ev, err := first, firstErr
		for err != io.EOF && (o.MaxEvents == 0 || line < o.MaxEvents) {
			if err != nil {
				return fmt.Errorf("failed to read the log: %w", err)
			}
			line++
			e := wireEvent{User: ev.User, Item: ev.Item, Author: ev.Author, Type: ev.Type.String(), Time: ev.Time}
			if err := s.add(&e, false, row); err != nil {
				return err
			}
			ev, err = events.Next()
		}
		res.Skipped += events.Report().Skipped
		return nil
	}()
	sent, err := s.finish(readErr)
	res.Follows, res.Events, res.Batches = sent.Follows, sent.Events, sent.Batches
	res.Elapsed = time.Since(start)
	return res, err
}

// sendFollows sends the world's follow graph, if it has one, as follow
// events at graphTime, and returns the rows skipped in lenient mode.
func sendFollows(s *sender, dir string, ropts dataset.ReadOptions, graphTime time.Time) (skipped int, err error) {
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
		e := wireEvent{User: f.User, Author: f.Author, Type: dataset.Follow.String(), Time: graphTime}
		if err := s.add(&e, true, row); err != nil {
			return follows.Report().Skipped, err
		}
	}
}

// sender posts events to /v1/events in batches through ordered shards. A
// user's events always go through the same shard, and a shard's batches
// reach the server one at a time in the order they were filled, so the
// server sees each user's events in the order they were added. The first
// failure cancels the sending.
type sender struct {
	ctx       context.Context
	cancel    context.CancelFunc
	client    *http.Client
	eventsURL string
	batch     int // most events per POST
	maxBody   int // most bytes per POST
	shards    []*replayShard
	wg        sync.WaitGroup

	mu       sync.Mutex
	firstBad error
	sent     replayResult // Follows, Events and Batches acknowledged
}

// newSender starts concurrency ordered senders to eventsURL; finish must
// be called to release them.
func newSender(ctx context.Context, client *http.Client, eventsURL string, batch, maxBody, concurrency int) *sender {
	s := &sender{client: client, eventsURL: eventsURL, batch: batch, maxBody: maxBody}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.shards = make([]*replayShard, concurrency)
	for i := range s.shards {
		sh := &replayShard{full: make(chan *replayBatch, 1), free: make(chan *replayBatch, 2)}
		sh.free <- &replayBatch{}
		sh.free <- &replayBatch{}
		s.shards[i] = sh
		s.wg.Add(1)
		go s.run(sh)
	}
	return s
}

// run posts a shard's batches until its channel is closed.
func (s *sender) run(sh *replayShard) {
	defer s.wg.Done()
	for b := range sh.full {
		if s.ctx.Err() == nil {
			if err := postEvents(s.ctx, s.client, s.eventsURL, b.enc.body(), b.enc.n); err != nil {
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

func (s *sender) fail(err error) {
	s.mu.Lock()
	if s.firstBad == nil {
		s.firstBad = err
	}
	s.mu.Unlock()
	s.cancel()
}

// flush hands a shard's batch to its sender.
func (s *sender) flush(sh *replayShard) error {
	if sh.cur == nil || sh.cur.enc.n == 0 {
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

// add routes one event to its user's shard; row names its source row for
// errors and is called only for the first event of a batch.
func (s *sender) add(e *wireEvent, isFollow bool, row func() string) error {
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
		if sh.cur.enc.n < s.batch && sh.cur.enc.add(e, s.maxBody) {
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
	if sh.cur.enc.n == s.batch {
		return s.flush(sh)
	}
	return nil
}

// finish sends what is left unless the caller failed with readErr, waits
// for the senders and returns what the server acknowledged with the first
// failure: the server's before the caller's, which is often its echo.
func (s *sender) finish(readErr error) (replayResult, error) {
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

// errNoFile is worldFile's answer for a file the world does not have.
var errNoFile = errors.New("no such file in the world")

// worldFile finds name, or name.gz, in dir.
func worldFile(dir, name string) (string, error) {
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
	p, err := worldFile(dir, "follows.jsonl")
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

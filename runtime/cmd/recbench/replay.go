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
// log's first time, then its log in order. A user's events always go
// through the same shard, so the server sees each user's events in file
// order whatever the concurrency. The first failure stops the replay.
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstBad error
		wg       sync.WaitGroup
	)
	fail := func(err error) {
		mu.Lock()
		if firstBad == nil {
			firstBad = err
		}
		mu.Unlock()
		cancel()
	}
	eventsURL := base + "/v1/events"
	shards := make([]*replayShard, o.Concurrency)
	for i := range shards {
		sh := &replayShard{full: make(chan *replayBatch, 1), free: make(chan *replayBatch, 2)}
		sh.free <- &replayBatch{}
		sh.free <- &replayBatch{}
		shards[i] = sh
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range sh.full {
				if ctx.Err() == nil {
					if err := postEvents(ctx, client, eventsURL, b.enc.body(), b.enc.n); err != nil {
						if ctx.Err() == nil || !errors.Is(err, context.Canceled) {
							fail(fmt.Errorf("batch starting at %s: %w", b.first, err))
						}
					} else {
						mu.Lock()
						res.Follows += b.follows
						res.Events += b.events
						res.Batches++
						mu.Unlock()
					}
				}
				b.clear()
				sh.free <- b
			}
		}()
	}
	// flush hands a shard's batch to its sender.
	flush := func(sh *replayShard) error {
		if sh.cur == nil || sh.cur.enc.n == 0 {
			return nil
		}
		select {
		case sh.full <- sh.cur:
			sh.cur = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// add routes one event to its user's shard.
	add := func(e *wireEvent, isFollow bool, row func() string) error {
		sh := shards[userShard(e.User, len(shards))]
		for {
			if sh.cur == nil {
				select {
				case sh.cur = <-sh.free:
					sh.cur.clear()
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if sh.cur.enc.n < o.Batch && sh.cur.enc.add(e, o.MaxBody) {
				break
			}
			if err := flush(sh); err != nil {
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
		if sh.cur.enc.n == o.Batch {
			return flush(sh)
		}
		return nil
	}

	start := time.Now()
	readErr := func() error {
		follows, err := openFollows(o.Data, ropts)
		if err != nil {
			return err
		}
		if follows != nil {
			defer follows.Close()
			var line int
			row := func() string { return fmt.Sprintf("follows row %d", line) }
			for {
				f, err := follows.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("failed to read the follow graph: %w", err)
				}
				line++
				e := wireEvent{User: f.User, Author: f.Author, Type: dataset.Follow.String(), Time: graphTime}
				if err := add(&e, true, row); err != nil {
					return err
				}
			}
			res.Skipped += follows.Report().Skipped
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
			if err := add(&e, false, row); err != nil {
				return err
			}
			ev, err = events.Next()
		}
		res.Skipped += events.Report().Skipped
		for _, sh := range shards {
			if err := flush(sh); err != nil {
				return err
			}
		}
		return nil
	}()
	for _, sh := range shards {
		close(sh.full)
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	if firstBad != nil {
		return res, firstBad
	}
	if readErr != nil {
		return res, readErr
	}
	return res, nil
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

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
	"net/http"
	"time"

	"github.com/recpipeline/recpipeline/runtime/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
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
		o.MaxBody = recclient.MaxBodyBytes
	}
	if o.Concurrency == 0 {
		o.Concurrency = 2
	}
	switch {
	case o.Batch < 1 || o.Batch > recclient.MaxEvents:
		return fmt.Errorf("-batch %d must be between 1 and %d", o.Batch, recclient.MaxEvents)
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

// replay posts the world's follow graph, as follow events stamped with the
// log's first time, then its log in order, through a recclient.Sender: the
// server sees each user's events in file order whatever the concurrency.
// The first failure stops the replay.
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

	eventsPath, err := recclient.WorldFile(o.Data, "events.jsonl")
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
	s := recclient.NewSender(ctx, client, base+"/v1/events", o.Batch, o.MaxBody, o.Concurrency)
	readErr := func() error {
		skipped, err := recclient.SendFollows(s, o.Data, ropts, graphTime)
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
			e := recclient.Event{User: ev.User, Item: ev.Item, Author: ev.Author, Type: ev.Type.String(), Time: ev.Time}
			if err := s.Add(&e, false, row); err != nil {
				return err
			}
			ev, err = events.Next()
		}
		res.Skipped += events.Report().Skipped
		return nil
	}()
	sent, err := s.Finish(readErr)
	res.Follows, res.Events, res.Batches = sent.Follows, sent.Events, sent.Batches
	res.Elapsed = time.Since(start)
	return res, err
}

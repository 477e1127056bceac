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

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/quality"
	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// replayOptions configure a replay.
type replayOptions struct {
	// URL of recserve, without a path.
	URL string
	// Data is the world directory: follows.jsonl (optional) and
	// events.jsonl, plain or gzip (".gz"). MovieLens is a MovieLens
	// ratings file instead (u.data, ratings.csv or ratings.dat, plain or
	// gzip). Exactly one is required.
	Data, MovieLens string
	// SendOptions bound the POSTs: Batch events (1000 by default, at most
	// 10000, the server's limit) and MaxBody bytes (4 MiB, the server's
	// limit, by default) each, through Concurrency ordered senders (2 by
	// default); each user's events all go through one of them.
	recclient.SendOptions
	// MaxEvents bounds the events of the log sent, the first rows of
	// events.jsonl or the first events of the ratings in time order; 0
	// sends them all. The follow graph is always sent whole.
	MaxEvents int
	// Lenient skips bad rows of the files instead of failing on the first.
	Lenient bool
}

// replayFlags names the fields of replayOptions after the flags of
// recbench replay.
var replayFlags = recclient.Names{"Batch": "-batch", "MaxBody": "-max-body", "Concurrency": "-concurrency"}

func (o *replayOptions) defaults() error {
	if err := o.SendOptions.Default(replayFlags); err != nil {
		return err
	}
	switch {
	case o.MaxEvents < 0:
		return fmt.Errorf("-max-events %d must not be negative", o.MaxEvents)
	case (o.Data == "") == (o.MovieLens == ""):
		return errors.New("give exactly one of -data and -movielens")
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

// replay posts a log to recserve through a recclient.Sender, so that the
// server sees each user's events in log order whatever the concurrency:
// a world's follow graph, as follow events stamped with the log's first
// time, then its log in file order; or the events of MovieLens ratings in
// time order, as recbench eval reads them (quality.ReadMovieLens): an
// impression and a click for every rating, and a like at 4 stars and up,
// at the rating's time. The first failure stops the replay.
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
	// send adds the log to the sender; it runs once the senders are
	// started.
	var send func(*recclient.Sender) error
	if o.MovieLens != "" {
		l, err := quality.ReadMovieLens(o.MovieLens, ropts)
		if err != nil {
			return res, err
		}
		res.Skipped = l.Skipped()
		n := l.Len()
		if o.MaxEvents > 0 {
			n = min(n, o.MaxEvents)
		}
		send = func(s *recclient.Sender) error { return l.Send(s, n) }
	} else {
		w, err := openWorldLog(o.Data, ropts)
		if err != nil {
			return res, err
		}
		defer w.events.Close()
		send = func(s *recclient.Sender) error { return w.send(s, o.MaxEvents, &res.Skipped) }
	}

	start := time.Now()
	s := recclient.NewSender(ctx, client, base+"/v1/events", o.SendOptions)
	sent, err := s.Finish(send(s))
	res.Follows, res.Events, res.Batches = sent.Follows, sent.Events, sent.Batches
	res.Elapsed = time.Since(start)
	return res, err
}

// worldLog is the log of a world directory, open, with its first event
// read: it dates the follow graph, which is the graph at the start of the
// log.
type worldLog struct {
	dir      string
	ropts    dataset.ReadOptions
	events   *dataset.Reader[dataset.Event]
	first    dataset.Event
	firstErr error // io.EOF for an empty log
}

func openWorldLog(dir string, ropts dataset.ReadOptions) (*worldLog, error) {
	p, err := recclient.WorldFile(dir, "events.jsonl")
	if err != nil {
		return nil, err
	}
	events, err := dataset.OpenEvents(p, ropts)
	if err != nil {
		return nil, fmt.Errorf("failed to open the log: %w", err)
	}
	w := &worldLog{dir: dir, ropts: ropts, events: events}
	w.first, w.firstErr = events.Next()
	if w.firstErr != nil && w.firstErr != io.EOF {
		_ = events.Close()
		return nil, fmt.Errorf("failed to read the log: %w", w.firstErr)
	}
	return w, nil
}

// send adds the follow graph, then the first maxEvents rows of the log
// (all of them for 0), to s, adding the rows it skipped to skipped.
func (w *worldLog) send(s *recclient.Sender, maxEvents int, skipped *int) error {
	graphTime := w.first.Time
	if w.firstErr == io.EOF {
		graphTime = time.Now().UTC()
	}
	n, err := recclient.SendFollows(s, w.dir, w.ropts, graphTime)
	*skipped += n
	if err != nil {
		return err
	}
	var line int
	row := func() string { return fmt.Sprintf("events row %d", line) }
	ev, err := w.first, w.firstErr
	for err != io.EOF && (maxEvents == 0 || line < maxEvents) {
		if err != nil {
			return fmt.Errorf("failed to read the log: %w", err)
		}
		line++
		e := recclient.Event{User: ev.User, Item: ev.Item, Author: ev.Author, Type: ev.Type.String(), Time: ev.Time}
		if err := s.Add(&e, false, row); err != nil {
			return err
		}
		ev, err = w.events.Next()
	}
	*skipped += w.events.Report().Skipped
	return nil
}

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

package dataset

import (
	"errors"
	"runtime"
	"sync"
)

// Parsing a row (JSON decoding, number parsing, validation) costs far more
// than finding its line: a 1M-item catalog spends most of its load in
// encoding/json. A reader with several workers splits the file into batches
// of lines on one goroutine, parses the batches on the workers and hands
// them back in file order; the order-dependent checks (duplicates, a log's
// time order) and the report stay on the caller's goroutine, so rows,
// errors and skipped counts are those of a serial read.

const (
	// aheadRows and aheadBytes bound a batch: enough rows to amortise the
	// hand-offs, few enough bytes to keep batches in flight small.
	aheadRows  = 256
	aheadBytes = 1 << 20
	// aheadBatches is how many batches per worker may be in flight.
	aheadBatches = 2
)

// batch is a run of consecutive non-blank lines and, once parsed, their rows.
type batch[T any] struct {
	buf   []byte
	ends  []int // line k is buf[ends[k-1]:ends[k]]
	lines []int // the 1-based line number of each line
	rows  []T
	errs  []*fieldError
	// end, when not nil, is what the scanner returned after the batch's
	// last line: io.EOF or the fatal error that stops the read.
	end error
	// parsed is closed when rows and errs are filled.
	parsed chan struct{}
}

// readAhead is the running split/parse pipeline of one Reader.
type readAhead[T any] struct {
	// order carries the batches in file order, parse to the workers.
	order, parse chan *batch[T]
	cur          *batch[T]
	next         int // cur's next row
	quit         *quitter
	// done is closed when the splitting goroutine has returned.
	done chan struct{}
	// err is the sticky error (the scanner's own belongs to the
	// splitting goroutine).
	err error
}

// quitter stops a pipeline once, from Close, an error, the end of the file
// or the collector when a reader is dropped unclosed.
type quitter struct {
	once sync.Once
	ch   chan struct{}
}

func (q *quitter) stop() { q.once.Do(func() { close(q.ch) }) }

func (a *readAhead[T]) stop() {
	a.quit.stop()
	<-a.done // the file may be closed once the splitter no longer reads it
}

// start runs the pipeline over r's lines. The goroutines hold the scanner
// and the parse function, not r, so that a reader dropped without Close is
// collected and its cleanup stops them.
func (r *Reader[T]) start() *readAhead[T] {
	workers := r.s.opts.Workers
	a := &readAhead[T]{
		order: make(chan *batch[T], workers*aheadBatches),
		parse: make(chan *batch[T], workers*aheadBatches),
		quit:  &quitter{ch: make(chan struct{})},
		done:  make(chan struct{}),
	}
	go split(r.s, a.order, a.parse, a.quit.ch, a.done)
	parse := r.format.parse
	for range workers {
		go func() {
			for b := range a.parse {
				b.rows, b.errs = make([]T, len(b.lines)), make([]*fieldError, len(b.lines))
				for k := range b.lines {
					lo := 0
					if k > 0 {
						lo = b.ends[k-1]
					}
					b.rows[k], b.errs[k] = parse(b.buf[lo:b.ends[k]])
				}
				close(b.parsed)
			}
		}()
	}
	runtime.AddCleanup(r, func(q *quitter) { q.stop() }, a.quit)
	return a
}

// split reads s's lines into batches, sending each to order and to parse,
// until the file ends, a fatal error or quit. It owns s's scanning state
// (line, err); the caller's goroutine owns its report.
func split[T any](s *lineScanner, order, parse chan<- *batch[T], quit <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	defer close(parse)
	defer close(order)
	for {
		b := &batch[T]{parsed: make(chan struct{})}
		for len(b.lines) < aheadRows && len(b.buf) < aheadBytes {
			select {
			case <-quit:
				return
			default:
			}
			line, err := s.next()
			if err != nil {
				b.end = err
				break
			}
			b.buf = append(b.buf, line...)
			b.ends = append(b.ends, len(b.buf))
			b.lines = append(b.lines, s.line)
		}
		select {
		case order <- b:
		case <-quit:
			return
		}
		select {
		case parse <- b:
		case <-quit:
			return
		}
		if b.end != nil {
			return
		}
	}
}

// nextAhead is Next on the pipeline.
func (r *Reader[T]) nextAhead() (T, error) {
	var zero T
	if r.ahead == nil {
		if r.s.err != nil { // closed before the first Next
			return zero, r.s.err
		}
		r.ahead = r.start()
	}
	a := r.ahead
	if a.err != nil {
		return zero, a.err
	}
	for {
		if a.cur == nil {
			b, ok := <-a.order
			if !ok { // stopped by Close
				return zero, r.fail(errClosed)
			}
			<-b.parsed
			a.cur, a.next = b, 0
		}
		b := a.cur
		for a.next < len(b.rows) {
			k := a.next
			a.next++
			v := b.rows[k]
			b.rows[k] = zero // the caller owns the row now
			ok, err := r.take(b.lines[k], &v, b.errs[k])
			if err != nil {
				return zero, r.fail(err)
			}
			if ok {
				return v, nil
			}
		}
		a.cur = nil
		if b.end != nil {
			return zero, r.fail(b.end)
		}
	}
}

// fail makes err the reader's sticky error and stops the pipeline.
func (r *Reader[T]) fail(err error) error {
	r.ahead.stop()
	r.ahead.err = err
	return err
}

// errClosed is what Next returns after Close.
var errClosed = errors.New("dataset: reader closed")

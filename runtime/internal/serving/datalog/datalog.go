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

package datalog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// QueueLen is how many batches of rows (one Events or Served call makes
// one per log it writes to) wait for the writer goroutine at most; the
// rows of a call that finds the queue full are dropped.
const QueueLen = 4096

// FlushInterval is the longest a written row stays in memory before it
// is written to its file.
const FlushInterval = time.Second

// Served is one list served to a user.
type Served struct {
	// RequestID identifies the request; Sampled decides by it.
	RequestID string
	User      string
	// Arm is the experiment arm that served the list, "" for none.
	Arm string
	// Revision is the config revision that served the list.
	Revision string
	// Time is when the list was served; the zero Time means the time of
	// the call.
	Time time.Time
	// Precomputed is set when the list came from the precomputed lists
	// rather than from the live funnel.
	Precomputed bool
	// Heads names the ranker's heads, in the order of every item's Probs;
	// nil when the ranker did not score the list.
	Heads []string
	// Items is the list in the order served.
	Items []ServedItem
}

// ServedItem is one item of a served list. Its head probabilities are a
// slice parallel to Served.Heads rather than a map, so that the caller
// (the engine, which holds them so) builds no map per item.
type ServedItem struct {
	Item, Author string
	// Score is the item's final ranking value.
	Score float64
	// Sources names the retrieval sources that proposed the item.
	Sources []string
	// Probs is the ranker's probability of each head of Served.Heads, in
	// that order; written only when it has exactly len(Served.Heads)
	// values.
	Probs []float32
}

// Logger writes the frontend's logs (see the package documentation). Its
// methods are safe for concurrent use, and a nil *Logger logs nothing, so
// that a frontend without deploy.logging can call it all the same.
type Logger struct {
	log   *slog.Logger
	files [numLogs]*rotator
	queue chan batch
	quit  chan struct{}
	done  chan struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	dropped atomic.Uint64
	m       *metrics
	lastErr time.Time // of the last write error logged; the writer's own
}

// batch is the encoded rows of one call for one log.
type batch struct {
	log  logIndex
	rows int
	buf  *[]byte
}

// Open creates cfg.Dir (file:///path, or a plain path) if need be and
// opens the current file of each log in it, named with the process's host
// name so that several frontend replicas can share the directory; a
// restarted process appends to its files. It starts the writer goroutine,
// which Close stops. cfg's zero sizes mean config.DefaultLogFileBytes and
// config.DefaultLogFiles. log may be nil (slog.Default).
func Open(cfg config.Logging, log *slog.Logger) (*Logger, error) {
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("failed to read the host name that names the log files: %w", err)
	}
	l, err := open(cfg, log, host, QueueLen)
	if err != nil {
		return nil, err
	}
	go l.run()
	return l, nil
}

// open opens the logs without starting the writer.
func open(cfg config.Logging, log *slog.Logger, host string, queueLen int) (*Logger, error) {
	if log == nil {
		log = slog.Default()
	}
	dir, err := LocalDir(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("failed to open the logs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create the log directory: %w", err)
	}
	maxBytes, maxFiles := cfg.MaxFileBytes, cfg.MaxFiles
	if maxBytes <= 0 {
		maxBytes = config.DefaultLogFileBytes
	}
	if maxFiles <= 0 {
		maxFiles = config.DefaultLogFiles
	}
	l := &Logger{
		log:   log,
		queue: make(chan batch, queueLen),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		m:     newMetrics(),
	}
	host = fileSafe(host)
	for i := range numLogs {
		r := &rotator{dir: dir, log: i.log(), host: host, header: i.header(), maxBytes: maxBytes, maxFiles: maxFiles}
		if err := r.open(); err != nil {
			for _, o := range l.files[:i] {
				_ = o.close()
			}
			return nil, err
		}
		if err := r.prune(time.Now()); err != nil {
			log.Warn("Failed to remove old log files", "log", i.log(), "err", err)
		}
		l.files[i] = r
	}
	return l, nil
}

// LocalDir returns the local directory of a deploy.logging.dir: a
// file:///path URI or a plain path.
func LocalDir(uri string) (string, error) {
	loc, err := fetch.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("log directory %q: %w", uri, err)
	}
	if loc.URL != nil {
		return "", fmt.Errorf("log directory %q is not local: want file:///path", fetch.Redact(uri))
	}
	return loc.Path, nil
}

// fileSafe maps a host name onto the characters a file name may hold
// anywhere: letters, digits, '-', '_' and '.'; others become '_'.
func fileSafe(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// Events logs events the store accepted: impressions, engagements, follows
// and unfollows to the events log, new_item and integrity events to the
// items log. An event with a zero Time is dated now, to the millisecond,
// as the store dates it; pass the events as given to the store, after it
// accepted them. Events never blocks: when the writer's queue is full the
// rows are dropped and counted.
func (l *Logger) Events(events []store.Event) {
	if l == nil || len(events) == 0 {
		return
	}
	var now time.Time
	var evBuf, itBuf *[]byte
	var evRows, itRows, skipped, skippedItems int
	for i := range events {
		e := &events[i]
		t := e.Time
		if t.IsZero() {
			if now.IsZero() {
				now = time.Now().Truncate(time.Millisecond)
			}
			t = now
		}
		if e.Type == store.NewItem || e.Type == store.Integrity {
			if !validItemEvent(e.Type, e.Item, e.Author, t, e.Risk) {
				skippedItems++
				continue
			}
			if itBuf == nil {
				itBuf = getBuf()
			}
			*itBuf = appendItemEvent(*itBuf, e.Type, e.Item, e.Author, t, e.Risk)
			itRows++
			continue
		}
		ev, ok := toDataset(e, t)
		if !ok {
			skipped++
			continue
		}
		if evBuf == nil {
			evBuf = getBuf()
		}
		*evBuf = dataset.AppendEvent(*evBuf, &ev)
		evRows++
	}
	if skipped > 0 {
		l.m.skipped[eventsLog].Add(float64(skipped))
	}
	if skippedItems > 0 {
		l.m.skipped[itemsLog].Add(float64(skippedItems))
	}
	l.send(eventsLog, evBuf, evRows)
	l.send(itemsLog, itBuf, itRows)
}

// Served logs s when Sampled(rate, s.RequestID), encoding it before it
// returns: the caller may reuse s's slices at once. It never blocks: when
// the writer's queue is full the list is dropped and counted.
func (l *Logger) Served(rate float64, s Served) {
	if l == nil || !Sampled(rate, s.RequestID) {
		return
	}
	if s.Time.IsZero() {
		s.Time = time.Now()
	}
	buf := getBuf()
	*buf = appendServed(*buf, &s)
	l.send(servedLog, buf, 1)
}

// Sampled reports whether a request's list is logged at rate, in [0, 1]:
// by a hash of the request id, so that a given id is always or never
// logged, by every replica alike, and a share rate of ids is. The engine
// may call it to skip building a Served that would not be logged.
func Sampled(rate float64, requestID string) bool {
	switch {
	case rate >= 1:
		return true
	case !(rate > 0): // NaN too
		return false
	}
	// FNV-1a, then a finaliser (MurmurHash3's fmix64) so that ids that
	// differ in their last byte spread over the top bits too.
	h := uint64(14695981039346656037)
	for i := 0; i < len(requestID); i++ {
		h ^= uint64(requestID[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return float64(h>>11)/(1<<53) < rate
}

// send queues a batch, or drops it when the queue is full or the Logger
// closed.
func (l *Logger) send(i logIndex, buf *[]byte, rows int) {
	if buf == nil {
		return
	}
	if !l.closed.Load() {
		select {
		case l.queue <- batch{log: i, rows: rows, buf: buf}:
			return
		default:
		}
	}
	l.dropped.Add(uint64(rows))
	l.m.dropped[i].Add(float64(rows))
	putBuf(buf)
}

// Dropped returns how many rows (events, item events and served lists)
// were dropped because the writer's queue was full or the Logger closed.
func (l *Logger) Dropped() uint64 {
	if l == nil {
		return 0
	}
	return l.dropped.Load()
}

// Collectors returns the Logger's metrics, for the caller to register:
// recpipeline_datalog_rows_total, recpipeline_datalog_dropped_rows_total,
// recpipeline_datalog_skipped_rows_total and
// recpipeline_datalog_write_errors_total, each by log.
func (l *Logger) Collectors() []prometheus.Collector {
	if l == nil {
		return nil
	}
	return []prometheus.Collector{l.m.writtenVec, l.m.droppedVec, l.m.skippedVec, l.m.errorsVec}
}

// Close writes what is queued, flushes and closes the files. Rows given
// after Close returns are dropped and counted; rows given while it runs
// may be lost. It may be called more than once.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	l.closeOnce.Do(func() {
		l.closed.Store(true)
		close(l.quit)
		<-l.done
		var errs []error
		for _, f := range l.files {
			errs = append(errs, f.close())
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

// run is the writer goroutine: it writes the queued batches, flushes the
// files every FlushInterval and keeps them alive (keepAlive), until
// Close.
func (l *Logger) run() {
	defer close(l.done)
	tick := time.NewTicker(FlushInterval)
	defer tick.Stop()
	for {
		select {
		case b := <-l.queue:
			l.write(b)
		case now := <-tick.C:
			for i, f := range l.files {
				if err := f.flush(); err != nil {
					l.failed(logIndex(i), err)
				}
				if err := f.keepAlive(now); err != nil {
					l.failed(logIndex(i), err)
				}
			}
		case <-l.quit:
			for {
				select {
				case b := <-l.queue:
					l.write(b)
				default:
					return
				}
			}
		}
	}
}

func (l *Logger) write(b batch) {
	defer putBuf(b.buf)
	if err := l.files[b.log].writeLines(*b.buf); err != nil {
		l.failed(b.log, err)
		return
	}
	l.m.written[b.log].Add(float64(b.rows))
}

// failed counts a failed write and logs it, at most once a minute.
func (l *Logger) failed(i logIndex, err error) {
	l.m.errors[i].Inc()
	if now := time.Now(); now.Sub(l.lastErr) >= time.Minute {
		l.lastErr = now
		l.log.Error("Failed to write a log; rows are lost until it succeeds (recpipeline_datalog_write_errors_total counts the failures)", "log", i.log(), "err", err)
	}
}

// bufPool holds encoding buffers; one larger than maxPooledBuf is let go.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const maxPooledBuf = 256 << 10

func getBuf() *[]byte {
	b := bufPool.Get().(*[]byte)
	*b = (*b)[:0]
	return b
}

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		bufPool.Put(b)
	}
}

// metrics are a Logger's counters, resolved per log.
type metrics struct {
	writtenVec, droppedVec, skippedVec, errorsVec *prometheus.CounterVec
	written, dropped, skipped, errors             [numLogs]prometheus.Counter
}

func newMetrics() *metrics {
	// Each metric's name and labels are literals, as the dashboard's test
	// reads them from the source.
	m := &metrics{
		writtenVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_datalog_rows_total",
			Help: "Rows written to the frontend's logs (events, item events, served lists), by log.",
		}, []string{"log"}),
		droppedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_datalog_dropped_rows_total",
			Help: "Rows of the frontend's logs dropped because the writer's queue was full (the disk too slow), by log.",
		}, []string{"log"}),
		skippedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_datalog_skipped_rows_total",
			Help: "Events the log's format cannot hold (a see_less of an author alone, an ID over 256 bytes), not written, by log.",
		}, []string{"log"}),
		errorsVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recpipeline_datalog_write_errors_total",
			Help: "Failed writes to the frontend's logs, by log; the rows of a failed write are lost.",
		}, []string{"log"}),
	}
	for i := range numLogs {
		name := string(i.log())
		m.written[i] = m.writtenVec.WithLabelValues(name)
		m.dropped[i] = m.droppedVec.WithLabelValues(name)
		m.skipped[i] = m.skippedVec.WithLabelValues(name)
		m.errors[i] = m.errorsVec.WithLabelValues(name)
	}
	return m
}

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

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// FsyncPolicy says when the log is synced to stable storage.
type FsyncPolicy string

const (
	// FsyncAlways syncs before Apply returns: an acknowledged batch survives
	// a crash of the machine. Concurrent Apply calls share one sync.
	FsyncAlways FsyncPolicy = "always"
	// FsyncInterval syncs every MemoryOptions.FsyncInterval: an acknowledged
	// batch survives a crash of the process, and all but the last interval's
	// survive a crash of the machine.
	FsyncInterval FsyncPolicy = "interval"
)

// MemoryOptions configure a Memory store.
type MemoryOptions struct {
	// State shapes the state. Defaults as documented on StateOptions.
	State StateOptions
	// Fsync policy. Default FsyncAlways.
	Fsync FsyncPolicy
	// FsyncInterval between syncs under FsyncInterval. Default 1s.
	FsyncInterval time.Duration
	// PopularRefresh is how long Popular may serve a cached top list after
	// the scores changed. Default 1s; negative: recompute at every change.
	PopularRefresh time.Duration
	// Logger for recovery and log errors. Default slog.Default().
	Logger *slog.Logger
	// CompactBytes is the log size at which it is first compacted (see
	// snapshot.go); after a compaction the next waits until the log has
	// twice the snapshot's size. Default DefaultCompactBytes; negative:
	// never.
	CompactBytes int64
}

// DefaultCompactBytes is the log size at which the Memory store first
// compacts its log.
const DefaultCompactBytes = 64 << 20

// Memory is the embedded backend: the state lives in memory and every batch
// is appended to a log on disk before it is acknowledged; opening replays the
// log.
//
// The log is compacted as it grows (MemoryOptions.CompactBytes): replaced
// by a snapshot of the state, so that neither the file nor the replay at
// start grows without bound (snapshot.go).
//
// The lists of precompute runs (ListStore) are a cache kept in memory
// only: they are not logged, and a restart loses them until the next run
// puts them again.
type Memory struct {
	dir      string
	st       *state
	lists    *listCache
	c        *committer
	log      *slog.Logger
	recovery RecoveryStats
	refresh  time.Duration

	closeMu sync.RWMutex // held to send to the committer, and to close
	closed  atomic.Bool

	topMu    sync.Mutex
	top      []popEntry // highest first
	topAt    time.Time
	topWrite uint64 // state.popWrite when top was computed
	topAll   bool   // top holds every item
}

// Err is why the store accepts no more events: its log failed a write or
// a sync (a full or failing disk), so that any later record could not be
// replayed; nil while it works. Restarting the process replays the log up
// to the last acknowledged batch, dropping the partial one, and starts a
// working log again.
func (m *Memory) Err() error {
	if err := m.c.broken.Load(); err != nil {
		return *err
	}
	return nil
}

var _ Store = (*Memory)(nil)
var _ Seeder = (*Memory)(nil)
var _ NewItemsReader = (*Memory)(nil)
var _ RiskReader = (*Memory)(nil)
var _ EventClock = (*Memory)(nil)
var _ ListStore = (*Memory)(nil)
var _ ActivityReader = (*Memory)(nil)

// OpenMemory opens, or creates, the Memory store whose log is in dir, and
// replays the log. A record torn by a crash at the end of the log is dropped
// and reported by Recovery.
func OpenMemory(dir string, opts MemoryOptions) (*Memory, error) {
	so, err := opts.State.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("failed to open store: %w", err)
	}
	switch opts.Fsync {
	case "":
		opts.Fsync = FsyncAlways
	case FsyncAlways, FsyncInterval:
	default:
		return nil, fmt.Errorf("failed to open store: fsync policy %q is neither %q nor %q", opts.Fsync, FsyncAlways, FsyncInterval)
	}
	if opts.FsyncInterval <= 0 {
		opts.FsyncInterval = time.Second
	}
	if opts.PopularRefresh == 0 {
		opts.PopularRefresh = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.CompactBytes == 0 {
		opts.CompactBytes = DefaultCompactBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("failed to create store directory: %w", err)
	}
	path := filepath.Join(dir, logName)
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("failed to open log: %w", err)
	}
	if err := lockLog(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("failed to open store: %w", err)
	}
	// A compacted log that was never renamed into place is not the log
	// (removed only under the lock: another process's may be in progress).
	if err := os.Remove(path + compactSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = f.Close()
		return nil, fmt.Errorf("failed to remove an unfinished compaction: %w", err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(dir); err != nil {
			_ = f.Close()
			return nil, err
		}
	}
	st := newState(so)
	start := time.Now()
	rec, err := replayLog(f, st)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	size, err := f.Seek(0, io.SeekCurrent) // replayLog leaves f at its end
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("failed to seek log: %w", err)
	}
	if rec.TornRecords > 0 {
		opts.Logger.Warn("Dropped a torn record at the end of the event log", "path", path,
			"truncatedBytes", rec.TruncatedBytes, "records", rec.Records)
	}
	opts.Logger.Info("Replayed the event log", "path", path, "records", rec.Records,
		"events", rec.Events, "duration", time.Since(start))
	m := &Memory{dir: dir, st: st, lists: newListCache(st.seed, so.Users), log: opts.Logger, recovery: rec, refresh: opts.PopularRefresh}
	m.c = &committer{
		f:          f,
		always:     opts.Fsync == FsyncAlways,
		interval:   opts.FsyncInterval,
		reqs:       make(chan *commitReq, 1024),
		applyQ:     make(chan []*commitReq, 4),
		apply:      st.apply,
		stopped:    make(chan struct{}),
		applied:    make(chan struct{}),
		path:       path,
		size:       size,
		minCompact: opts.CompactBytes,
		snapshot:   st.snapshot,
		logger:     opts.Logger,
	}
	if opts.CompactBytes > 0 {
		m.c.compactAt = max(opts.CompactBytes, 2*rec.SnapshotBytes)
	}
	go m.c.run()
	go m.c.runApplier()
	return m, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open store directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to sync store directory: %w", err)
	}
	return nil
}

// Recovery returns what opening the store replayed.
func (m *Memory) Recovery() RecoveryStats { return m.recovery }

// Apply logs the batch, applies it and returns once both are done. If ctx
// ends while the batch is being logged, Apply returns ctx's error but the
// batch may still be recorded.
func (m *Memory) Apply(ctx context.Context, events []Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(events) == 0 {
		return nil
	}
	evs, err := normalize(events, time.Now())
	if err != nil {
		return err
	}
	req := &commitReq{record: appendRecord(nil, evs), events: evs, done: make(chan error, 1)}
	m.closeMu.RLock()
	if m.closed.Load() {
		m.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case m.c.reqs <- req:
	case <-ctx.Done():
		m.closeMu.RUnlock()
		return ctx.Err()
	}
	m.closeMu.RUnlock()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("failed to wait for the event log, the batch may yet be recorded: %w", ctx.Err())
	}
}

// Seed records catalog items as their authors' recent items. Seeded items
// are not logged.
func (m *Memory) Seed(ctx context.Context, items []ItemTime) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	for i, it := range items {
		if it.Item == "" || it.Author == "" {
			return fmt.Errorf("failed to seed item %d: %w: item and author are required", i, ErrInvalidEvent)
		}
	}
	for _, it := range items {
		it.Time = time.UnixMilli(it.Time.UnixMilli())
		m.st.addAuthorItem(it)
	}
	return nil
}

// Risks implements RiskReader from the replayed and applied events.
func (m *Memory) Risks(ctx context.Context) (map[string]float64, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.allRisks(), nil
}

// NewItems implements NewItemsReader from the replayed and applied events.
func (m *Memory) NewItems(ctx context.Context) ([]ItemTime, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.publishedItems(), nil
}

func (m *Memory) check(ctx context.Context) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return ctx.Err()
}

// NewestEvent implements EventClock from the replayed and applied events.
// It costs an atomic load.
func (m *Memory) NewestEvent(ctx context.Context) (time.Time, error) {
	if err := m.check(ctx); err != nil {
		return time.Time{}, err
	}
	return m.st.newestEvent(), nil
}

// PutLists implements ListStore. The lists are kept in memory only, not in
// the log: a restart loses them. At most StateOptions.Users lists are
// kept (approximately: the bound is per shard of users); past it the
// soonest to expire are dropped, and lists expired at now are dropped from
// the shards the batch writes to. A list already expired at now removes
// its user's previous list.
func (m *Memory) PutLists(ctx context.Context, lists []List, now time.Time) error {
	if err := m.check(ctx); err != nil {
		return err
	}
	if err := checkLists(lists); err != nil {
		return err
	}
	m.lists.put(lists, now.Round(0))
	return nil
}

// UserList implements ListStore without allocating: the List returned is
// the one stored, shared by every caller, and must not be modified.
func (m *Memory) UserList(ctx context.Context, user string, now time.Time) (*List, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.lists.get(user, now.Round(0)), nil
}

// ActiveUsers implements ActivityReader from the replayed and applied
// events, over the users the state keeps (StateOptions.Users): a user
// forgotten past it is forgotten here too. A user restored from a snapshot
// written before activity was kept is listed only once active again, and
// counts its events from then on.
func (m *Memory) ActiveUsers(ctx context.Context, since time.Time, limit int) ([]UserActivity, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.activeUsers(since, limit), nil
}

// Follows implements SocialReader.
func (m *Memory) Follows(ctx context.Context, user string) ([]string, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.follows(user), nil
}

// RecentByAuthors implements SocialReader.
func (m *Memory) RecentByAuthors(ctx context.Context, authors []string, since time.Time, limit int, buf []ItemTime) ([]ItemTime, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.recentByAuthors(authors, since, limit, buf), nil
}

// RecentEngagements implements UserReader.
func (m *Memory) RecentEngagements(ctx context.Context, user string, limit int) ([]Engagement, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.recentEngagements(user, limit), nil
}

// Seen implements UserReader.
func (m *Memory) Seen(ctx context.Context, user string) (*Filter, error) {
	if err := m.check(ctx); err != nil {
		return nil, err
	}
	return m.st.seen(user), nil
}

// popularTopK is the least number of items a cached top list holds.
const popularTopK = 500

// Popular implements PopularReader. The top list is recomputed at most once
// per MemoryOptions.PopularRefresh, and only when scores changed.
func (m *Memory) Popular(ctx context.Context, now time.Time, limit int) ([]ItemScore, error) {
	return m.AppendPopular(ctx, now, limit, nil)
}

// AppendPopular implements PopularAppender.
func (m *Memory) AppendPopular(ctx context.Context, now time.Time, limit int, dst []ItemScore) ([]ItemScore, error) {
	if err := m.check(ctx); err != nil {
		return dst, err
	}
	if limit <= 0 {
		return dst, nil
	}
	m.topMu.Lock()
	defer m.topMu.Unlock()
	write := m.st.popWrite.Load()
	fresh := m.top != nil && (write == m.topWrite || time.Since(m.topAt) < m.refresh)
	if !fresh || (limit > len(m.top) && !m.topAll) {
		k := max(limit, popularTopK)
		m.st.popMu.Lock()
		m.top = topK(m.st.pop, k)
		m.topAll = len(m.top) == len(m.st.pop)
		m.st.popMu.Unlock()
		m.topAt, m.topWrite = time.Now(), write
	}
	n := min(limit, len(m.top))
	dst = slices.Grow(dst, n)
	for _, e := range m.top[:n] {
		dst = append(dst, ItemScore{Item: e.item, Score: m.st.decay.score(e.score, now)})
	}
	return dst, nil
}

// Close waits for batches being logged, syncs and closes the log.
func (m *Memory) Close() error {
	m.closeMu.Lock()
	if m.closed.Load() {
		m.closeMu.Unlock()
		return ErrClosed
	}
	m.closed.Store(true)
	close(m.c.reqs)
	m.closeMu.Unlock()
	<-m.c.stopped
	<-m.c.applied
	f := m.c.f // the committer's last log, once it has stopped
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to sync log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("failed to close log: %w", err)
	}
	return nil
}

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
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"
)

// The log is one file, events.log, in the store's directory:
//
//	file    = magic record*
//	magic   = "recslog1"                        8 bytes
//	record  = length:u32le crc:u32le payload    one per Apply batch
//	crc     = CRC-32C (Castagnoli) of payload
//	payload = version:byte(1 or 3) count:uvarint event{count}
//	event   = type:byte time:varint(unix ms) user:str item:str author:str [risk:f64le]
//	          (risk in version 3, for new_item and integrity events only;
//	          a batch without such events is written as version 1, which
//	          binaries from before risks read)
//	str     = len:uvarint bytes
//
// A bad record at the end of the file is a torn write: it was never
// acknowledged (an acknowledged batch was written, and with FsyncAlways
// synced, before Apply returned), so replay truncates the file there and
// counts it as torn. The end means: the header is cut short; what follows
// is all zeros (the file grew but the data never landed); the record's
// length reaches the end of the file and its payload is cut short or fails
// its checksum; or its length is out of bounds with no room for another
// record after its header. A bad record with more of the log after it is
// corruption of acknowledged events: replay refuses it (ErrCorruptLog) and
// leaves the file as it is, rather than drop everything after it.
const (
	logName       = "events.log"
	logMagic      = "recslog1"
	recordHeader  = 8
	recordVersion = 3
	// recordVersionNoRisk is the version of the records written before
	// events carried risks; they are read as risk 0.
	recordVersionNoRisk = 1
	// maxRecord bounds a record's payload; a larger length is corruption.
	maxRecord = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var typeCodes = []EventType{Impression, Click, Like, Comment, Share, SeeLess, Follow, Unfollow, NewItem, Integrity}

// hasRisk reports whether a record of version 3 carries an event's risk.
func hasRisk(t EventType) bool { return t == NewItem || t == Integrity }

func typeCode(t EventType) byte {
	for i, c := range typeCodes {
		if c == t {
			return byte(i + 1)
		}
	}
	return 0
}

// crcOf is a payload's checksum.
func crcOf(payload []byte) uint32 { return crc32.Checksum(payload, crcTable) }

// appendRecord appends the record of a validated batch to buf.
func appendRecord(buf []byte, events []Event) []byte {
	buf, start := beginRecord(buf)
	// Version 1 when no event carries a risk, which a binary from before
	// risks still reads (a rollback keeps the log).
	version := byte(recordVersionNoRisk)
	if slices.ContainsFunc(events, func(e Event) bool { return hasRisk(e.Type) }) {
		version = recordVersion
	}
	buf = append(buf, version)
	buf = binary.AppendUvarint(buf, uint64(len(events)))
	for i := range events {
		e := &events[i]
		buf = append(buf, typeCode(e.Type))
		buf = binary.AppendVarint(buf, e.Time.UnixMilli())
		buf = appendString(buf, e.User)
		buf = appendString(buf, e.Item)
		buf = appendString(buf, e.Author)
		if version == recordVersion && hasRisk(e.Type) {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(e.Risk))
		}
	}
	return finishRecord(buf, start)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

var errBadPayload = errors.New("malformed record payload")

func decodePayload(p []byte) ([]Event, error) {
	if len(p) < 2 || p[0] != recordVersion && p[0] != recordVersionNoRisk {
		return nil, errBadPayload
	}
	risks := p[0] == recordVersion
	p = p[1:]
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)) {
		return nil, errBadPayload
	}
	p = p[k:]
	events := make([]Event, n)
	for i := range events {
		if len(p) < 1 || p[0] == 0 || int(p[0]) > len(typeCodes) {
			return nil, errBadPayload
		}
		events[i].Type = typeCodes[p[0]-1]
		p = p[1:]
		ms, k := binary.Varint(p)
		if k <= 0 {
			return nil, errBadPayload
		}
		p = p[k:]
		events[i].Time = time.UnixMilli(ms)
		for _, s := range []*string{&events[i].User, &events[i].Item, &events[i].Author} {
			l, k := binary.Uvarint(p)
			if k <= 0 || l > uint64(len(p)-k) {
				return nil, errBadPayload
			}
			*s = string(p[k : k+int(l)])
			p = p[k+int(l):]
		}
		if risks && hasRisk(events[i].Type) {
			if len(p) < 8 {
				return nil, errBadPayload
			}
			events[i].Risk = math.Float64frombits(binary.LittleEndian.Uint64(p))
			p = p[8:]
		}
	}
	if len(p) != 0 {
		return nil, errBadPayload
	}
	return events, nil
}

// decodeRecord decodes a payload: a batch of events, or a snapshot record
// and what restores it.
func decodeRecord(p []byte) ([]Event, func(*state), error) {
	if len(p) > 0 && isSnapshot(p[0]) {
		restore, err := decodeSnapshot(p)
		return nil, restore, err
	}
	events, err := decodePayload(p)
	return events, nil, err
}

// RecoveryStats describe what opening a Memory store replayed.
type RecoveryStats struct {
	// Records and Events replayed.
	Records int
	Events  int
	// TornRecords is 1 when the log ended in a record that was not fully
	// written (as after a crash mid-write), which was dropped; 0 otherwise.
	TornRecords int
	// TruncatedBytes were cut from the end of the log.
	TruncatedBytes int64
	// SnapshotBytes are the log's snapshot records (see snapshot.go): the
	// state as of the log's last compaction.
	SnapshotBytes int64
	// Bytes is the log's size after the replay.
	Bytes int64
}

// replayLog reads the log in f from the start into st (each batch applied,
// each snapshot record restored), truncates a torn tail, and leaves f
// positioned at its end. A new or empty file gets the magic.
func replayLog(f *os.File, st0 *state) (RecoveryStats, error) {
	var st RecoveryStats
	info, err := f.Stat()
	if err != nil {
		return st, fmt.Errorf("failed to stat log: %w", err)
	}
	size := info.Size()
	if size < int64(len(logMagic)) {
		// New, or torn while being created: nothing was ever acknowledged.
		st.TruncatedBytes = size
		if size > 0 {
			st.TornRecords = 1
		}
		if err := f.Truncate(0); err != nil {
			return st, fmt.Errorf("failed to truncate log: %w", err)
		}
		if _, err := f.WriteAt([]byte(logMagic), 0); err != nil {
			return st, fmt.Errorf("failed to write log header: %w", err)
		}
		if err := f.Sync(); err != nil {
			return st, fmt.Errorf("failed to sync log: %w", err)
		}
		_, err := f.Seek(int64(len(logMagic)), io.SeekStart)
		return st, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("failed to seek log: %w", err)
	}
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(logMagic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return st, fmt.Errorf("failed to read log header: %w", err)
	}
	if string(magic) != logMagic {
		return st, fmt.Errorf("failed to open log: %s does not start with %q", f.Name(), logMagic)
	}
	off := int64(len(logMagic))
	var hdr [recordHeader]byte
	var payload []byte
	for off < size {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			break // torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		sum := binary.LittleEndian.Uint32(hdr[4:])
		rest := size - off - recordHeader
		if n < 2 || n > maxRecord {
			if rest < recordHeader+2 {
				break // no room for another record: a torn header
			}
			if err := badRecord(f, off, st.Records, fmt.Sprintf("length %d out of bounds", n), size); err != nil {
				return st, err
			}
			break
		}
		if int64(n) > rest {
			break // the file ends inside the record: a torn write
		}
		if cap(payload) < int(n) {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(r, payload); err != nil {
			return st, fmt.Errorf("failed to read log: %w", err)
		}
		why := ""
		var events []Event
		var restore func(*state)
		if crcOf(payload) != sum {
			why = "checksum mismatch" // checked first: a flipped count must not size an allocation
		} else if events, restore, err = decodeRecord(payload); err != nil {
			why = err.Error()
		}
		if why != "" {
			if int64(n) == rest {
				break // the last record, cut inside: a torn write
			}
			if err := badRecord(f, off, st.Records, why, size); err != nil {
				return st, err
			}
			break
		}
		if restore != nil {
			restore(st0)
			st.SnapshotBytes += recordHeader + int64(n)
		} else {
			st0.apply(events)
		}
		st.Records++
		st.Events += len(events)
		off += recordHeader + int64(n)
	}
	if off < size {
		st.TornRecords = 1
		st.TruncatedBytes = size - off
		if err := f.Truncate(off); err != nil {
			return st, fmt.Errorf("failed to truncate torn log tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return st, fmt.Errorf("failed to sync log: %w", err)
		}
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return st, fmt.Errorf("failed to seek log: %w", err)
	}
	return st, nil
}

// ErrCorruptLog matches (errors.Is) a log with a bad record before its end.
var ErrCorruptLog = errors.New("the event log is corrupt")

// badRecord is the error of the bad record at off, after good records,
// unless every byte from off on is zero: a tail the file grew by without
// its data landing, which is torn, not corrupt (nil).
func badRecord(f *os.File, off int64, good int, why string, size int64) error {
	zero, err := allZero(f, off, size)
	if err != nil {
		return err
	}
	if zero {
		return nil
	}
	return fmt.Errorf("%w: %s: record %d at byte %d: %s, with %d bytes of the log after it; the file was left as it is: restore it, or move it aside to start with an empty state",
		ErrCorruptLog, f.Name(), good+1, off, why, size-off)
}

// allZero reports whether the bytes of f from off to size are all zero.
func allZero(f *os.File, off, size int64) (bool, error) {
	buf := make([]byte, 64<<10)
	for off < size {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		for _, b := range buf[:n] {
			if b != 0 {
				return false, nil
			}
		}
		off += int64(n)
		if err != nil && off < size {
			return false, fmt.Errorf("failed to read log: %w", err)
		}
	}
	return true, nil
}

// commitReq is one Apply waiting for its batch to be logged and applied,
// or a barrier: the applier closes it when it reaches it.
type commitReq struct {
	record  []byte
	events  []Event
	done    chan error
	barrier chan struct{}
}

// committer writes batches to the log in groups: while one group is being
// written and synced, the batches that arrive queue up and form the next
// group, so concurrent Apply calls share one write and one fsync. Written
// groups go, in log order, to an applier that applies them to memory and then
// acknowledges them, overlapping with the next group's fsync.
type committer struct {
	f        *os.File
	always   bool
	interval time.Duration
	reqs     chan *commitReq
	applyQ   chan []*commitReq
	apply    func([]Event)
	stopped  chan struct{}
	applied  chan struct{}
	// broken is the first write or sync failure, after which the log
	// accepts nothing more.
	broken atomic.Pointer[error]

	// Compaction (see snapshot.go): once the log holds size >= compactAt
	// bytes (compactAt 0: never), it is replaced by a snapshot of the
	// state; the next compaction waits until it has grown to twice that,
	// and at least minCompact.
	path        string
	size        int64
	compactAt   int64
	minCompact  int64
	snapshot    func(io.Writer) error
	logger      *slog.Logger
	compactions atomic.Int64
}

// maxGroupBytes bounds one group's write.
const maxGroupBytes = 8 << 20

func (c *committer) run() {
	defer close(c.stopped)
	defer close(c.applyQ)
	var (
		buf    []byte
		group  []*commitReq
		failed error
		dirty  bool
		tick   <-chan time.Time
	)
	if !c.always {
		t := time.NewTicker(c.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		var first *commitReq
		var ok bool
		select {
		case first, ok = <-c.reqs:
		case <-tick:
			if dirty && failed == nil {
				if err := c.f.Sync(); err != nil {
					failed = fmt.Errorf("failed to sync log: %w", err)
					c.broken.CompareAndSwap(nil, &failed)
				}
				dirty = false
			}
			continue
		}
		if !ok {
			if dirty && failed == nil {
				_ = c.f.Sync() // Close syncs again and reports errors.
			}
			return
		}
		group = append(group[:0], first)
		buf = append(buf[:0], first.record...)
	drain:
		for len(buf) < maxGroupBytes {
			select {
			case r, ok := <-c.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
				buf = append(buf, r.record...)
			default:
				break drain
			}
		}
		if failed == nil {
			if _, err := c.f.Write(buf); err != nil {
				failed = fmt.Errorf("failed to write log: %w", err)
			} else if c.always {
				if err := c.f.Sync(); err != nil {
					failed = fmt.Errorf("failed to sync log: %w", err)
				}
			} else {
				dirty = true
			}
		}
		if failed != nil {
			// A failed write may have left part of a record: nothing after it
			// could be replayed, so the log accepts nothing more.
			c.broken.CompareAndSwap(nil, &failed)
			for _, r := range group {
				r.done <- failed
			}
			continue
		}
		c.applyQ <- append([]*commitReq(nil), group...)
		c.size += int64(len(buf))
		if c.compactAt > 0 && c.size >= c.compactAt && c.compact() {
			dirty = false // the new file was synced
		}
	}
}

// compact replaces the log with a snapshot of the state, once the applier
// has applied every batch written; the batches that arrive meanwhile wait.
// A failure leaves the old log in place, growing, and is tried again when
// it has grown as much again. It reports whether the log was replaced.
func (c *committer) compact() bool {
	reached := make(chan struct{})
	c.applyQ <- []*commitReq{{barrier: reached}}
	<-reached
	start := time.Now()
	f, size, err := replaceFile(c.path, func(w io.Writer) error {
		if _, err := io.WriteString(w, logMagic); err != nil {
			return err
		}
		return c.snapshot(w)
	})
	if f == nil {
		c.logger.Warn("Failed to compact the event log; it keeps growing", "path", c.path, "bytes", c.size, "err", err)
		c.compactAt = c.size + max(c.minCompact, c.size)
		return false
	}
	if err != nil {
		c.logger.Warn("Compacted the event log, but syncing its directory failed", "path", c.path, "err", err)
	}
	old := c.f
	c.f = f
	_ = old.Close()
	c.logger.Info("Compacted the event log", "path", c.path, "fromBytes", c.size, "toBytes", size, "duration", time.Since(start))
	c.size = size
	c.compactAt = max(c.minCompact, 2*c.size)
	c.compactions.Add(1)
	return true
}

// compactSuffix names the file a compacted log is written to before it
// replaces the log.
const compactSuffix = ".compact"

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// replaceFile writes a new file beside path with write, locks and syncs
// it, and renames it over path: a crash leaves either file whole. It
// returns the new file, positioned at its end, and its size, or a nil file
// when path was not replaced; with an error beside the file when the
// rename may not be durable yet.
func replaceFile(path string, write func(io.Writer) error) (*os.File, int64, error) {
	tmp := path + compactSuffix
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, 0, err
	}
	fail := func(err error) (*os.File, int64, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return nil, 0, err
	}
	if err := lockLog(f); err != nil {
		return fail(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countingWriter{w: bw}
	if err := write(cw); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		// The rename happened: the new file is the log.
		return f, cw.n, err
	}
	return f, cw.n, nil
}

func (c *committer) runApplier() {
	defer close(c.applied)
	for group := range c.applyQ {
		for _, r := range group {
			if r.barrier != nil {
				close(r.barrier)
				continue
			}
			c.apply(r.events)
			r.done <- nil
		}
	}
}

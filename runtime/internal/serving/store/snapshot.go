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
	"encoding/binary"
	"io"
	"math"
	"slices"
	"time"
)

// Compaction bounds the log: once it has grown past the compaction
// threshold (see MemoryOptions.CompactBytes), the committer writes a new
// log that holds a snapshot of the state and nothing else, and replaces
// the old one with it (written beside it, synced, renamed over it). A
// snapshot is records like any other, checked by the same checksum and
// replayed in order, each of one kind:
//
//	snapshot payload = version:byte(4, or 2) kind:byte count:uvarint entry{count}
//	kind 1, users    = id:str last:uvarint [lastEvent:varint events:uvarint] follows:strs engagements seen:strs seeLessItems:strs seeLessAuthors:strs
//	kind 2, popular  = item:str logWeight:f64le
//	kind 3, meta     = newest:varint touched:uvarint evicted:varint
//	kind 4, authors  = author:str n:uvarint (item:str time:varint){n}
//	kind 5, published = item:str author:str time:varint
//	kind 6, risks    = item:str risk:f64le
//	strs             = n:uvarint str{n}
//	engagements      = n:uvarint (type:byte time:varint item:str){n}
//
// Lists are written oldest first, so that restoring them in order keeps
// which entries are the newest. Replaying a snapshot gives a state that
// answers exactly as the one it was taken of (TestMemoryCompactsItsLog).
//
// Version 4 added each user's activity (lastEvent in Unix milliseconds and
// the events count, see ActivityReader); version 2 snapshots, written
// before, are still read, their users restored with no activity recorded
// until their next event. Snapshot and event records share the version
// byte: events are versions 1 and 3 (log.go), snapshots 2 and 4.
const (
	snapshotVersion = 4
	// snapshotVersionNoActivity is the version of the snapshots written
	// before users' activity was kept.
	snapshotVersionNoActivity = 2

	snapUsers     byte = 1
	snapPopular   byte = 2
	snapMeta      byte = 3
	snapAuthors   byte = 4
	snapPublished byte = 5
	snapRisks     byte = 6

	// snapshotChunk is the size past which a snapshot record is closed and
	// the next begun, far below maxRecord.
	snapshotChunk = 4 << 20
)

// beginRecord appends a record header to fill in later (finishRecord) and
// returns the buffer and the record's start.
func beginRecord(buf []byte) ([]byte, int) {
	return append(buf, make([]byte, recordHeader)...), len(buf)
}

// finishRecord fills in the header of the record that starts at start.
func finishRecord(buf []byte, start int) []byte {
	payload := buf[start+recordHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crcOf(payload))
	return buf
}

// snapshotWriter writes snapshot records of one kind to out, starting a
// new one whenever a record passes snapshotChunk, so that no more than a
// record of the snapshot is in memory at once.
type snapshotWriter struct {
	out   io.Writer
	err   error // the first write error; later writes are skipped
	buf   []byte
	kind  byte
	entry []byte
	n     int // entries in the open record
	body  []byte
}

// add closes the entry built in w.entry.
func (w *snapshotWriter) add() {
	w.body = append(w.body, w.entry...)
	w.entry = w.entry[:0]
	w.n++
	if len(w.body) >= snapshotChunk {
		w.flush()
	}
}

// floats writes m, item by item, as records of kind.
func (w *snapshotWriter) floats(kind byte, m map[string]float64) {
	w.kind = kind
	for item, v := range m {
		w.entry = binary.LittleEndian.AppendUint64(appendString(w.entry, item), math.Float64bits(v))
		w.add()
	}
	w.flush()
}

// flush writes the open record, if it has entries.
func (w *snapshotWriter) flush() {
	if w.n == 0 {
		return
	}
	buf, start := beginRecord(w.buf[:0])
	buf = append(buf, snapshotVersion, w.kind)
	buf = binary.AppendUvarint(buf, uint64(w.n))
	buf = append(buf, w.body...)
	w.buf = finishRecord(buf, start)
	if w.err == nil {
		_, w.err = w.out.Write(w.buf)
	}
	w.body, w.n = w.body[:0], 0
}

func appendStrings(buf []byte, ss []string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(ss)))
	for _, s := range ss {
		buf = appendString(buf, s)
	}
	return buf
}

// ordered returns the keys of the set, the oldest added first.
func (s *recentSet) ordered() []string {
	return slices.AppendSeq(make([]string, 0, s.len()), s.all)
}

// snapshot writes to out the records that rebuild s on an empty state.
// The caller keeps writers away (the committer holds back the next group
// until it returns); readers may go on.
func (s *state) snapshot(out io.Writer) error {
	w := &snapshotWriter{out: out, kind: snapPublished}
	s.newMu.RLock()
	for _, it := range s.newItems {
		w.entry = binary.AppendVarint(appendString(appendString(w.entry, it.Item), it.Author), it.Time.UnixMilli())
		w.add()
	}
	s.newMu.RUnlock()
	w.flush()
	w.kind = snapAuthors
	for i := range s.authors {
		sh := &s.authors[i]
		sh.mu.RLock()
		for a, items := range sh.authors {
			e := binary.AppendUvarint(appendString(w.entry, a), uint64(len(items)))
			for _, it := range items {
				e = binary.AppendVarint(appendString(e, s.itemID(it.item)), it.ms)
			}
			w.entry = e
			w.add()
		}
		sh.mu.RUnlock()
	}
	w.flush()
	w.kind = snapUsers
	for i := range s.users {
		sh := &s.users[i]
		sh.mu.RLock()
		for id, u := range sh.users {
			e := appendString(w.entry, id)
			e = binary.AppendUvarint(e, u.last)
			e = binary.AppendVarint(e, u.lastEvent)
			e = binary.AppendUvarint(e, uint64(u.events))
			e = appendStrings(e, u.follows)
			eng := u.engagements.newest(len(u.engagements.buf))
			e = binary.AppendUvarint(e, uint64(len(eng)))
			for k := len(eng) - 1; k >= 0; k-- {
				e = append(e, typeCode(eng[k].Type))
				e = binary.AppendVarint(e, eng[k].Time.UnixMilli())
				e = appendString(e, eng[k].Item)
			}
			e = appendStrings(e, u.seen.ordered())
			e = appendStrings(e, u.seeLessItems.ordered())
			w.entry = appendStrings(e, u.seeLessAuthors.ordered())
			w.add()
		}
		sh.mu.RUnlock()
	}
	w.flush()
	s.popMu.Lock()
	w.floats(snapPopular, s.pop)
	s.popMu.Unlock()
	s.riskMu.RLock()
	w.floats(snapRisks, s.risks)
	s.riskMu.RUnlock()
	w.kind = snapMeta
	w.entry = binary.AppendVarint(w.entry, s.newest.Load())
	w.entry = binary.AppendUvarint(w.entry, s.touched)
	w.entry = binary.AppendVarint(w.entry, s.evicted.Load())
	w.add()
	w.flush()
	return w.err
}

// snapshotReader decodes one snapshot payload.
type snapshotReader struct {
	p   []byte
	err bool
}

func (r *snapshotReader) uvarint() uint64 {
	v, k := binary.Uvarint(r.p)
	if k <= 0 {
		r.err, r.p = true, nil
		return 0
	}
	r.p = r.p[k:]
	return v
}

func (r *snapshotReader) varint() int64 {
	v, k := binary.Varint(r.p)
	if k <= 0 {
		r.err, r.p = true, nil
		return 0
	}
	r.p = r.p[k:]
	return v
}

func (r *snapshotReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.p)) {
		r.err, r.p = true, nil
		return ""
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	return s
}

func (r *snapshotReader) strs() []string {
	n := r.uvarint()
	if n > uint64(len(r.p)) {
		r.err, r.p = true, nil
		return nil
	}
	out := make([]string, n)
	for i := range out {
		out[i] = r.str()
	}
	return out
}

// decodeSnapshot checks a snapshot payload whole and returns what applies
// it to a state, so that a bad payload changes nothing.
func decodeSnapshot(p []byte) (func(*state), error) {
	if len(p) < 3 || !isSnapshot(p[0]) {
		return nil, errBadPayload
	}
	version, kind := p[0], p[1]
	r := &snapshotReader{p: p[2:]}
	n := r.uvarint()
	if n > uint64(len(r.p)) {
		return nil, errBadPayload
	}
	var apply func(*state)
	switch kind {
	case snapUsers:
		apply = r.users(int(n), version != snapshotVersionNoActivity)
	case snapPopular:
		apply = r.popular(int(n))
	case snapAuthors:
		apply = r.authors(int(n))
	case snapPublished:
		apply = r.published(int(n))
	case snapRisks:
		apply = r.risks(int(n))
	case snapMeta:
		newest, touched, evicted := r.varint(), r.uvarint(), r.varint()
		apply = func(s *state) {
			s.newest.Store(newest)
			s.touched = max(s.touched, touched)
			s.evicted.Store(evicted)
		}
	default:
		return nil, errBadPayload
	}
	if r.err || len(r.p) != 0 {
		return nil, errBadPayload
	}
	return apply, nil
}

// isSnapshot reports whether a record's version byte is a snapshot's.
func isSnapshot(version byte) bool {
	return version == snapshotVersion || version == snapshotVersionNoActivity
}

type snapshotUser struct {
	id                          string
	last                        uint64
	lastEvent, events           int64
	follows                     []string
	engagements                 []Engagement
	seen, seeLessItems, seeLess []string
}

// users reads n users entries, with their activity when activity is set
// (version 4).
func (r *snapshotReader) users(n int, activity bool) func(*state) {
	users := make([]snapshotUser, 0, n)
	for range n {
		u := snapshotUser{id: r.str(), last: r.uvarint(), lastEvent: math.MinInt64}
		if activity {
			u.lastEvent = r.varint()
			if ev := r.uvarint(); ev <= math.MaxInt64 {
				u.events = int64(ev)
			} else {
				r.err = true
			}
		}
		u.follows = r.strs()
		ne := r.uvarint()
		if ne > uint64(len(r.p)) {
			r.err = true
			return nil
		}
		for range ne {
			if len(r.p) < 1 || r.p[0] == 0 || int(r.p[0]) > len(typeCodes) {
				r.err = true
				return nil
			}
			t := typeCodes[r.p[0]-1]
			r.p = r.p[1:]
			ms := r.varint()
			u.engagements = append(u.engagements, Engagement{Item: r.str(), Type: t, Time: time.UnixMilli(ms)})
		}
		u.seen, u.seeLessItems, u.seeLess = r.strs(), r.strs(), r.strs()
		if r.err {
			return nil
		}
		users = append(users, u)
	}
	return func(s *state) {
		for _, su := range users {
			u := &userState{last: su.last, lastEvent: su.lastEvent, events: su.events}
			if len(su.follows) > 0 {
				u.follows = slices.Compact(slices.Sorted(slices.Values(su.follows)))
			}
			for _, e := range su.engagements {
				u.engagements.push(e, s.opts.RecentEngagements)
			}
			for _, it := range su.seen {
				u.seen.add(it, s.opts.SeenItems)
			}
			for _, it := range su.seeLessItems {
				u.seeLessItems.add(it, s.opts.SeeLess)
			}
			for _, a := range su.seeLess {
				u.seeLessAuthors.add(a, s.opts.SeeLess)
			}
			sh := s.user(su.id)
			sh.mu.Lock()
			if len(sh.users) >= s.perShard() {
				sh.evictOne()
				s.evicted.Add(1)
			}
			sh.users[su.id] = u
			sh.mu.Unlock()
			s.touched = max(s.touched, su.last)
		}
	}
}

// floats reads n entries of an items-to-numbers kind.
func (r *snapshotReader) floats(n int) ([]string, []float64) {
	items := make([]string, n)
	vs := make([]float64, n)
	for i := range n {
		items[i] = r.str()
		if len(r.p) < 8 {
			r.err = true
			return nil, nil
		}
		vs[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.p))
		r.p = r.p[8:]
	}
	return items, vs
}

func (r *snapshotReader) popular(n int) func(*state) {
	items, weights := r.floats(n)
	return func(s *state) {
		s.popMu.Lock()
		for i, it := range items {
			s.pop[it] = weights[i]
		}
		s.popMu.Unlock()
		s.popWrite.Add(1)
		s.prunePopular()
	}
}

func (r *snapshotReader) authors(n int) func(*state) {
	authors := make([]string, n)
	items := make([][]string, n)
	ms := make([][]int64, n)
	for i := range n {
		authors[i] = r.str()
		k := r.uvarint()
		if k > uint64(len(r.p)) {
			r.err = true
			return nil
		}
		items[i], ms[i] = make([]string, k), make([]int64, k)
		for j := range items[i] {
			items[i][j], ms[i][j] = r.str(), r.varint()
		}
	}
	return func(s *state) {
		for i, a := range authors {
			list := make([]authorItem, len(items[i]))
			for j, id := range items[i] {
				list[j] = authorItem{item: s.itemLoc(id), ms: ms[i][j]}
			}
			sh := s.author(a)
			sh.mu.Lock()
			sh.authors[a] = list
			sh.mu.Unlock()
		}
	}
}

func (r *snapshotReader) published(n int) func(*state) {
	items := make([]ItemTime, n)
	for i := range items {
		item, author := r.str(), r.str()
		items[i] = ItemTime{Item: item, Author: author, Time: time.UnixMilli(r.varint())}
	}
	return func(s *state) {
		s.newMu.Lock()
		for _, it := range items {
			if _, ok := s.newIDs[it.Item]; !ok {
				s.newIDs[it.Item] = struct{}{}
				s.newItems = append(s.newItems, it)
			}
		}
		s.newMu.Unlock()
	}
}

func (r *snapshotReader) risks(n int) func(*state) {
	items, risks := r.floats(n)
	return func(s *state) {
		for i, it := range items {
			s.setRisk(it, risks[i])
		}
	}
}

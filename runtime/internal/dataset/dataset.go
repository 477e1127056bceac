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

// Package dataset defines the versioned on-disk formats of the data that
// rectrain learns from and recserve loads: the item catalog, the user table,
// the follow graph and the interaction log. FORMAT.md in this directory is the
// specification; this package is its reference implementation.
//
// Every file is JSON Lines whose first line is a header naming the format and
// its version. Readers stream (one row in memory at a time), validate every
// row and report bad rows by file and line number, either failing on the first
// (ReadOptions.Strict) or skipping and counting them. Writers validate what
// they write with the same rules, so a file a Writer produced always reads
// back. A path ending in ".gz" is gzip-compressed transparently on both sides.
package dataset

import (
	"fmt"
	"time"
)

// Version is the format version this package writes and the only one it reads.
const Version = 1

// Kind names a file format; it is the "format" field of the header line.
type Kind string

// The formats.
const (
	KindCatalog Kind = "recpipeline.catalog"
	KindEvents  Kind = "recpipeline.events"
	KindFollows Kind = "recpipeline.follows"
	KindUsers   Kind = "recpipeline.users"
)

// Limits that every reader and writer enforce.
const (
	// MaxIDBytes is the longest user, item or author ID.
	MaxIDBytes = 256
	// MaxFeatureDim is the widest feature vector a header may declare.
	MaxFeatureDim = 4096
)

// Header is the first line of every file.
type Header struct {
	// Format names the file's kind.
	Format Kind `json:"format"`
	// Version is the format version, Version for files this package writes.
	Version int `json:"version"`
	// FeatureDim is the width of every features array; catalog and users
	// files only, where it is required (0 is allowed: rows then carry []).
	FeatureDim int `json:"feature_dim,omitempty"`
}

// EventType is the kind of an interaction. Its text form is the lower-case
// name used in the "type" field of the log.
type EventType uint8

// The event types. The zero value is not a valid type.
const (
	Impression EventType = iota + 1 // the item was shown to the user
	Click                           // the user opened the item
	Like
	Comment
	Share
	SeeLess  // the user asked to see less like this
	Follow   // the user followed the item's author (Event.Author)
	Unfollow // the user unfollowed Event.Author
)

var eventNames = [...]string{"", "impression", "click", "like", "comment", "share", "see_less", "follow", "unfollow"}

// EventTypes lists every valid event type in declaration order.
func EventTypes() []EventType {
	return []EventType{Impression, Click, Like, Comment, Share, SeeLess, Follow, Unfollow}
}

// Valid reports whether t is one of the declared event types.
func (t EventType) Valid() bool { return t >= Impression && t <= Unfollow }

// String returns the name used in the log ("see_less"), or "EventType(n)".
func (t EventType) String() string {
	if t.Valid() {
		return eventNames[t]
	}
	return fmt.Sprintf("EventType(%d)", uint8(t))
}

// ParseEventType parses the name used in the log.
func ParseEventType(s string) (EventType, error) {
	for i := Impression; i <= Unfollow; i++ {
		if eventNames[i] == s {
			return i, nil
		}
	}
	return 0, fmt.Errorf("unknown event type %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (t EventType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("invalid event type %d", uint8(t))
	}
	return []byte(eventNames[t]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *EventType) UnmarshalText(b []byte) error {
	v, err := ParseEventType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Item is one row of catalog.jsonl.
type Item struct {
	ID      string    `json:"id"`
	Author  string    `json:"author"`
	Created time.Time `json:"created"`
	// Features has exactly Header.FeatureDim finite values.
	Features []float32 `json:"features"`
	// IntegrityRisk is the probability, in [0, 1], that the item breaks policy.
	IntegrityRisk float64 `json:"integrity_risk"`
}

// Event is one row of events.jsonl.
type Event struct {
	User string    `json:"user"`
	Item string    `json:"item,omitempty"`
	Type EventType `json:"type"`
	Time time.Time `json:"time"`
	// Author is required for Follow and Unfollow and optional otherwise.
	Author string `json:"author,omitempty"`
}

// FollowEdge is one row of follows.jsonl: User follows Author.
type FollowEdge struct {
	User   string `json:"user"`
	Author string `json:"author"`
}

// User is one row of users.jsonl.
type User struct {
	ID string `json:"id"`
	// Features has exactly Header.FeatureDim finite values.
	Features []float32 `json:"features"`
}

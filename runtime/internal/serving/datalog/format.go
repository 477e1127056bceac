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
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// Log names one of the logs; it is the first part of its files' names.
type Log string

// The logs.
const (
	EventsLog Log = "events"
	ItemsLog  Log = "items"
	ServedLog Log = "served"
)

// The formats of the items and served logs, the "format" of their header
// lines; the events log is a dataset.KindEvents file.
const (
	KindItemEvents dataset.Kind = "recpipeline.item_events"
	KindServed     dataset.Kind = "recpipeline.served"
)

// Kind returns the format of the log's files.
func (lg Log) Kind() dataset.Kind {
	switch lg {
	case EventsLog:
		return dataset.KindEvents
	case ItemsLog:
		return KindItemEvents
	case ServedLog:
		return KindServed
	}
	return ""
}

// logIndex numbers the logs of a Logger.
type logIndex int

const (
	eventsLog logIndex = iota
	itemsLog
	servedLog
	numLogs
)

func (i logIndex) log() Log {
	return [...]Log{EventsLog, ItemsLog, ServedLog}[i]
}

// header returns the first line of the log's files.
func (i logIndex) header() []byte {
	b := append([]byte(nil), `{"format":"`...)
	b = append(b, i.log().Kind()...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, dataset.Version, 10)
	return append(b, '}', '\n')
}

// ItemEvent is one row of the items log: a publication or an integrity
// risk.
type ItemEvent struct {
	// Type is store.NewItem or store.Integrity.
	Type store.EventType `json:"type"`
	Item string          `json:"item"`
	// Author is the item's author, for store.NewItem.
	Author string    `json:"author,omitempty"`
	Time   time.Time `json:"time"`
	// Risk is the integrity risk the event set, in [0, 1].
	Risk float64 `json:"risk"`
}

// toDataset maps an impression, engagement, follow or unfollow onto a row
// of events.jsonl dated t; false when the format cannot hold it.
func toDataset(e *store.Event, t time.Time) (dataset.Event, bool) {
	var typ dataset.EventType
	switch e.Type {
	case store.Impression:
		typ = dataset.Impression
	case store.Click:
		typ = dataset.Click
	case store.Like:
		typ = dataset.Like
	case store.Comment:
		typ = dataset.Comment
	case store.Share:
		typ = dataset.Share
	case store.SeeLess:
		typ = dataset.SeeLess
	case store.Follow:
		typ = dataset.Follow
	case store.Unfollow:
		typ = dataset.Unfollow
	default:
		return dataset.Event{}, false
	}
	ev := dataset.Event{User: e.User, Item: e.Item, Type: typ, Time: t, Author: e.Author}
	return ev, validEvent(&ev)
}

// validEvent checks a row by the rules of events.jsonl but its time order.
func validEvent(ev *dataset.Event) bool {
	social := ev.Type == dataset.Follow || ev.Type == dataset.Unfollow
	switch {
	case !validID(ev.User), !ev.Type.Valid(), !validTime(ev.Time):
		return false
	case ev.Item != "" || !social:
		if !validID(ev.Item) {
			return false
		}
	}
	return (ev.Author == "" && !social) || validID(ev.Author)
}

// validItemEvent checks a row of the items log.
func validItemEvent(typ store.EventType, item, author string, t time.Time, risk float64) bool {
	switch typ {
	case store.NewItem:
		if !validID(author) {
			return false
		}
	case store.Integrity:
	default:
		return false
	}
	return validID(item) && validTime(t) && risk >= 0 && risk <= 1
}

// validID checks an ID by the rules of FORMAT.md.
func validID(id string) bool {
	return id != "" && len(id) <= dataset.MaxIDBytes && utf8.ValidString(id)
}

func validTime(t time.Time) bool {
	y := t.UTC().Year()
	return !t.IsZero() && y >= 1 && y <= 9999
}

// appendItemEvent appends a row of the items log.
func appendItemEvent(b []byte, typ store.EventType, item, author string, t time.Time, risk float64) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, string(typ))
	b = append(b, `,"item":`...)
	b = appendString(b, item)
	if typ == store.NewItem {
		b = append(b, `,"author":`...)
		b = appendString(b, author)
	}
	b = append(b, `,"time":`...)
	b = appendTime(b, t)
	b = append(b, `,"risk":`...)
	b = appendFloat(b, risk, 64)
	return append(b, '}', '\n')
}

// appendServed appends a row of the served log.
func appendServed(b []byte, s *Served) []byte {
	b = append(b, `{"request_id":`...)
	b = appendString(b, s.RequestID)
	b = append(b, `,"user":`...)
	b = appendString(b, s.User)
	b = append(b, `,"arm":`...)
	b = appendString(b, s.Arm)
	b = append(b, `,"revision":`...)
	b = appendString(b, s.Revision)
	b = append(b, `,"time":`...)
	b = appendTime(b, s.Time)
	b = append(b, `,"precomputed":`...)
	b = strconv.AppendBool(b, s.Precomputed)
	b = append(b, `,"items":[`...)
	for i := range s.Items {
		it := &s.Items[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"item":`...)
		b = appendString(b, it.Item)
		b = append(b, `,"author":`...)
		b = appendString(b, it.Author)
		b = append(b, `,"score":`...)
		b = appendFloat(b, it.Score, 64)
		b = append(b, `,"sources":[`...)
		for j, src := range it.Sources {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendString(b, src)
		}
		b = append(b, `],"heads":{`...)
		if len(it.Probs) == len(s.Heads) {
			for j, h := range s.Heads {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, h)
				b = append(b, ':')
				b = appendFloat(b, float64(it.Probs[j]), 32)
			}
		}
		b = append(b, "}}"...)
	}
	return append(b, ']', '}', '\n')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat appends f, or null when it is not finite (JSON has no NaN).
func appendFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendString appends s as a JSON string: as it is when it needs no
// escaping (IDs and names nearly always), through encoding/json otherwise.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s) // a string always marshals
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

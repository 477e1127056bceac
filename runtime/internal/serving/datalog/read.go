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
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// maxLineBytes is the longest line the readers take, the dataset
// readers' default.
const maxLineBytes = 16 << 20

// maxErrors is how many bad rows a Report keeps.
const maxErrors = 10

// ReadEvents reads an events log file (gzip when its name ends in ".gz"),
// calling fn with every good row in file order. A row that breaks a rule
// of events.jsonl other than time order (which these files do not keep) is
// skipped and counted in the report, as by a lenient dataset reader; so is
// a last line still being written. An empty file (one just started) has no
// rows. A bad header, a line longer than 16 MiB, a failed read or an
// error of fn ends the read with an error.
func ReadEvents(path string, fn func(dataset.Event) error) (dataset.Report, error) {
	return read(path, dataset.KindEvents, func(line []byte) (string, string, error) {
		ev, field, msg := parseEvent(line)
		if msg != "" {
			return field, msg, nil
		}
		return "", "", fn(ev)
	})
}

// ReadItemEvents reads an items log file as ReadEvents reads an events
// log.
func ReadItemEvents(path string, fn func(ItemEvent) error) (dataset.Report, error) {
	return read(path, KindItemEvents, func(line []byte) (string, string, error) {
		ev, field, msg := parseItemEvent(line)
		if msg != "" {
			return field, msg, nil
		}
		return "", "", fn(ev)
	})
}

// read reads a log file of kind, calling row with every line after the
// header; row returns the field and message of a bad row, or fn's error.
func read(path string, kind dataset.Kind, row func([]byte) (field, msg string, err error)) (dataset.Report, error) {
	var rep dataset.Report
	f, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("failed to open %s: %w", path, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bufio.NewReaderSize(f, bufSize))
		if errors.Is(err, io.EOF) {
			return rep, nil // empty
		}
		if err != nil {
			return rep, fmt.Errorf("failed to open %s as gzip: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, bufSize), maxLineBytes)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			if err := checkHeader(b, kind); err != nil {
				return rep, &dataset.RowError{File: path, Line: 1, Msg: err.Error()}
			}
			continue
		}
		if len(b) == 0 {
			continue
		}
		field, msg, err := row(b)
		if err != nil {
			return rep, err
		}
		if msg != "" {
			rep.Skipped++
			if len(rep.Errors) < maxErrors {
				rep.Errors = append(rep.Errors, &dataset.RowError{File: path, Line: line, Field: field, Msg: msg})
			}
			continue
		}
		rep.Rows++
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return rep, &dataset.RowError{File: path, Line: line + 1, Msg: fmt.Sprintf("line longer than %d bytes", maxLineBytes)}
		}
		return rep, fmt.Errorf("failed to read %s after line %d: %w", path, line, err)
	}
	return rep, nil
}

func checkHeader(b []byte, kind dataset.Kind) error {
	var h struct {
		Format  string `json:"format"`
		Version int    `json:"version"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return fmt.Errorf("bad header, want {\"format\":%q,\"version\":%d}: %v", kind, dataset.Version, err)
	}
	if dataset.Kind(h.Format) != kind {
		return fmt.Errorf("format is %q, want %q", h.Format, kind)
	}
	if h.Version != dataset.Version {
		return fmt.Errorf("unsupported version %d: this reader understands version %d", h.Version, dataset.Version)
	}
	return nil
}

// parseEvent parses a row of the events log; msg says what is wrong with
// a bad one.
func parseEvent(line []byte) (ev dataset.Event, field, msg string) {
	var raw struct {
		User   string `json:"user"`
		Item   string `json:"item"`
		Type   string `json:"type"`
		Time   string `json:"time"`
		Author string `json:"author"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return ev, "", "malformed JSON row: " + err.Error()
	}
	typ, err := dataset.ParseEventType(raw.Type)
	if err != nil {
		return ev, "type", err.Error()
	}
	t, err := time.Parse(time.RFC3339Nano, raw.Time)
	if err != nil {
		return ev, "time", fmt.Sprintf("%q is not an RFC 3339 time", raw.Time)
	}
	ev = dataset.Event{User: raw.User, Item: raw.Item, Type: typ, Time: t, Author: raw.Author}
	if !validEvent(&ev) {
		return ev, "", "breaks a rule of events.jsonl (user, item or author missing or not an ID, or a time outside years 1..9999)"
	}
	return ev, "", ""
}

// parseItemEvent parses a row of the items log.
func parseItemEvent(line []byte) (ev ItemEvent, field, msg string) {
	var raw struct {
		Type   string   `json:"type"`
		Item   string   `json:"item"`
		Author string   `json:"author"`
		Time   string   `json:"time"`
		Risk   *float64 `json:"risk"`
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return ev, "", "malformed JSON row: " + err.Error()
	}
	t, err := time.Parse(time.RFC3339Nano, raw.Time)
	if err != nil {
		return ev, "time", fmt.Sprintf("%q is not an RFC 3339 time", raw.Time)
	}
	if raw.Risk == nil {
		return ev, "risk", "required"
	}
	ev = ItemEvent{Type: store.EventType(raw.Type), Item: raw.Item, Author: raw.Author, Time: t, Risk: *raw.Risk}
	if !validItemEvent(ev.Type, ev.Item, ev.Author, ev.Time, ev.Risk) {
		return ev, "", "breaks a rule of the items log (type not new_item or integrity, item or a new_item's author missing or not an ID, risk outside [0, 1])"
	}
	return ev, "", ""
}

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
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestRoundTrip(t *testing.T) {
	items := []Item{
		{ID: "i1", Author: "a1", Created: t0, Features: []float32{0.5, -1.25, 3e-7}, IntegrityRisk: 0.1},
		{ID: "i\"2\"\n\u2028é", Author: "a\\2", Created: t0.Add(time.Hour + 123*time.Millisecond), Features: []float32{0, 1, -0}, IntegrityRisk: 1},
	}
	events := []Event{
		{User: "u1", Item: "i1", Type: Impression, Time: t0},
		{User: "u1", Item: "i1", Type: Click, Time: t0},
		{User: "u2", Item: "i2", Type: SeeLess, Time: t0.Add(time.Second)},
		{User: "u2", Item: "i2", Type: Follow, Time: t0.Add(2 * time.Second), Author: "a2"},
		{User: "u2", Type: Unfollow, Time: t0.In(time.FixedZone("X", 3600)).Add(3 * time.Second), Author: "a2"},
	}
	follows := []FollowEdge{{User: "u1", Author: "a1"}, {User: "u1", Author: "a2"}}
	users := []User{{ID: "u1", Features: []float32{1, 2, 3}}, {ID: "u2", Features: []float32{-1, 0.25, 1e10}}}

	for _, ext := range []string{".jsonl", ".jsonl.gz"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			p := func(n string) string { return filepath.Join(dir, n+ext) }
			cw, err := CreateCatalog(p("catalog"), 3)
			must(t, err)
			for _, it := range items {
				must(t, cw.Write(it))
			}
			must(t, cw.Close())
			ew, err := CreateEvents(p("events"))
			must(t, err)
			for _, ev := range events {
				must(t, ew.Write(ev))
			}
			must(t, ew.Close())
			fw, err := CreateFollows(p("follows"))
			must(t, err)
			for _, f := range follows {
				must(t, fw.Write(f))
			}
			must(t, fw.Close())
			uw, err := CreateUsers(p("users"), 3)
			must(t, err)
			for _, u := range users {
				must(t, uw.Write(u))
			}
			must(t, uw.Close())

			strict := ReadOptions{Strict: true}
			gotItems := readAll(t, must2(OpenCatalog(p("catalog"), strict)))
			if len(gotItems) != len(items) {
				t.Fatalf("read %d items, wrote %d", len(gotItems), len(items))
			}
			for j := range items {
				if !gotItems[j].Created.Equal(items[j].Created) {
					t.Errorf("item %d created %v, want %v", j, gotItems[j].Created, items[j].Created)
				}
				gotItems[j].Created = items[j].Created
			}
			if !reflect.DeepEqual(gotItems, items) {
				t.Errorf("items differ:\n got %+v\nwant %+v", gotItems, items)
			}
			gotEvents := readAll(t, must2(OpenEvents(p("events"), strict)))
			for j := range events {
				if !gotEvents[j].Time.Equal(events[j].Time) {
					t.Errorf("event %d time %v, want %v", j, gotEvents[j].Time, events[j].Time)
				}
				gotEvents[j].Time = events[j].Time
			}
			if !reflect.DeepEqual(gotEvents, events) {
				t.Errorf("events differ:\n got %+v\nwant %+v", gotEvents, events)
			}
			if got := readAll(t, must2(OpenFollows(p("follows"), strict))); !reflect.DeepEqual(got, follows) {
				t.Errorf("follows differ: got %+v", got)
			}
			ur := must2(OpenUsers(p("users"), strict))
			if ur.Header().FeatureDim != 3 {
				t.Errorf("users header feature_dim %d, want 3", ur.Header().FeatureDim)
			}
			if got := readAll(t, ur); !reflect.DeepEqual(got, users) {
				t.Errorf("users differ: got %+v", got)
			}
			if ext == ".jsonl.gz" {
				raw, err := os.ReadFile(p("events"))
				must(t, err)
				if _, err := gzip.NewReader(bytes.NewReader(raw)); err != nil {
					t.Errorf("events%s is not gzip: %v", ext, err)
				}
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func must2[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func readAll[T any](t *testing.T, r *Reader[T]) []T {
	t.Helper()
	defer r.Close()
	rows, err := r.ReadAll()
	must(t, err)
	return rows
}

const (
	catalogHeader = `{"format":"recpipeline.catalog","version":1,"feature_dim":2}`
	eventsHeader  = `{"format":"recpipeline.events","version":1}`
	followsHeader = `{"format":"recpipeline.follows","version":1}`
	usersHeader   = `{"format":"recpipeline.users","version":1,"feature_dim":2}`
	goodItem      = `{"id":"i1","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":0.5}`
	goodEvent     = `{"user":"u1","item":"i1","type":"click","time":"2025-01-01T00:00:00Z"}`
	lateEvent     = `{"user":"u1","item":"i1","type":"click","time":"2025-01-02T00:00:00Z"}`
	goodFollow    = `{"user":"u1","author":"a1"}`
	goodUser      = `{"id":"u1","features":[1,2]}`
)

// readKind reads a whole file of a kind and returns the rows read, the
// report and the error.
func readKind(kind Kind, text string, opts ReadOptions) (int, Report, error) {
	r := strings.NewReader(text)
	switch kind {
	case KindCatalog:
		return drain(NewCatalogReader(r, "catalog.jsonl", opts))
	case KindEvents:
		return drain(NewEventReader(r, "events.jsonl", opts))
	case KindFollows:
		return drain(NewFollowReader(r, "follows.jsonl", opts))
	default:
		return drain(NewUserReader(r, "users.jsonl", opts))
	}
}

func drain[T any](r *Reader[T], err error) (int, Report, error) {
	if err != nil {
		return 0, Report{}, err
	}
	rows, err := r.ReadAll()
	return len(rows), r.Report(), err
}

func TestBadRows(t *testing.T) {
	// Each case is a file: header, a good row, the bad row (line 3), a good row.
	type badRow struct {
		kind  Kind
		bad   string
		field string
	}
	cases := map[string]badRow{
		"events: malformed JSON":          {KindEvents, `{"user":"u1",`, ""},
		"events: not an object":           {KindEvents, `["u1"]`, ""},
		"events: missing user":            {KindEvents, `{"item":"i1","type":"click","time":"2025-01-01T00:00:00Z"}`, "user"},
		"events: empty user":              {KindEvents, `{"user":"","item":"i1","type":"click","time":"2025-01-01T00:00:00Z"}`, "user"},
		"events: user is a number":        {KindEvents, `{"user":7,"item":"i1","type":"click","time":"2025-01-01T00:00:00Z"}`, "user"},
		"events: missing item on a click": {KindEvents, `{"user":"u1","type":"click","time":"2025-01-01T00:00:00Z"}`, "item"},
		"events: unknown type":            {KindEvents, `{"user":"u1","item":"i1","type":"poke","time":"2025-01-01T00:00:00Z"}`, "type"},
		"events: missing type":            {KindEvents, `{"user":"u1","item":"i1","time":"2025-01-01T00:00:00Z"}`, "type"},
		"events: bad time":                {KindEvents, `{"user":"u1","item":"i1","type":"click","time":"yesterday"}`, "time"},
		"events: missing time":            {KindEvents, `{"user":"u1","item":"i1","type":"click"}`, "time"},
		"events: out of order":            {KindEvents, `{"user":"u1","item":"i1","type":"click","time":"2024-12-31T23:59:59Z"}`, "time"},
		"events: follow without author":   {KindEvents, `{"user":"u1","item":"i1","type":"follow","time":"2025-01-01T00:00:00Z"}`, "author"},
		"events: id too long":             {KindEvents, `{"user":"` + strings.Repeat("x", MaxIDBytes+1) + `","item":"i1","type":"click","time":"2025-01-01T00:00:00Z"}`, "user"},
		"catalog: missing id":             {KindCatalog, `{"author":"a1","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":0.5}`, "id"},
		"catalog: duplicate id":           {KindCatalog, goodItem, "id"},
		"catalog: missing author":         {KindCatalog, `{"id":"i2","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":0.5}`, "author"},
		"catalog: bad created":            {KindCatalog, `{"id":"i2","author":"a1","created":"2025-13-01","features":[1,2],"integrity_risk":0.5}`, "created"},
		"catalog: too few features":       {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1],"integrity_risk":0.5}`, "features"},
		"catalog: non-number feature":     {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,"2"],"integrity_risk":0.5}`, "features"},
		"catalog: null feature":           {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,null],"integrity_risk":0.5}`, "features"},
		"catalog: feature beyond float32": {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,1e39],"integrity_risk":0.5}`, "features"},
		"catalog: features not an array":  {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":3,"integrity_risk":0.5}`, "features"},
		"catalog: missing features":       {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","integrity_risk":0.5}`, "features"},
		"catalog: risk above 1":           {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":1.5}`, "integrity_risk"},
		"catalog: risk missing":           {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,2]}`, "integrity_risk"},
		"catalog: risk is a string":       {KindCatalog, `{"id":"i2","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,2],"integrity_risk":"low"}`, "integrity_risk"},
		"follows: missing author":         {KindFollows, `{"user":"u1"}`, "author"},
		"follows: empty user":             {KindFollows, `{"user":"","author":"a1"}`, "user"},
		"users: missing id":               {KindUsers, `{"features":[1,2]}`, "id"},
		"users: too many features":        {KindUsers, `{"id":"u2","features":[1,2,3]}`, "features"},
		"users: duplicate id":             {KindUsers, goodUser, "id"},
	}
	headers := map[Kind][3]string{
		KindEvents:  {eventsHeader, goodEvent, lateEvent},
		KindCatalog: {catalogHeader, goodItem, strings.Replace(goodItem, `"i1"`, `"i9"`, 1)},
		KindFollows: {followsHeader, goodFollow, goodFollow},
		KindUsers:   {usersHeader, goodUser, `{"id":"u9","features":[0,0]}`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h := headers[tc.kind]
			text := strings.Join([]string{h[0], h[1], tc.bad, h[2]}, "\n") + "\n"

			_, _, err := readKind(tc.kind, text, ReadOptions{Strict: true})
			var re *RowError
			if !errors.As(err, &re) {
				t.Fatalf("strict: got error %v, want a *RowError", err)
			}
			if re.Line != 3 || re.Field != tc.field {
				t.Errorf("strict: error at line %d field %q, want line 3 field %q (%v)", re.Line, re.Field, tc.field, re)
			}
			if !strings.Contains(re.Error(), ":3: ") {
				t.Errorf("strict: message %q does not name the line", re.Error())
			}

			rows, rep, err := readKind(tc.kind, text, ReadOptions{})
			if err != nil {
				t.Fatalf("lenient: %v", err)
			}
			if rows != 2 || rep.Rows != 2 || rep.Skipped != 1 || len(rep.Errors) != 1 {
				t.Fatalf("lenient: %d rows, report %+v; want 2 rows and 1 skipped", rows, rep)
			}
			if e := rep.Errors[0]; e.Line != 3 || e.Field != tc.field {
				t.Errorf("lenient: kept error at line %d field %q, want line 3 field %q", e.Line, e.Field, tc.field)
			}
		})
	}
}

func TestBadHeaders(t *testing.T) {
	cases := map[string]struct {
		kind  Kind
		text  string
		field string
	}{
		"empty file":               {KindEvents, "", ""},
		"row instead of header":    {KindEvents, goodEvent + "\n", "format"},
		"wrong format":             {KindEvents, followsHeader + "\n", "format"},
		"future version":           {KindFollows, `{"format":"recpipeline.follows","version":2}` + "\n", "version"},
		"missing version":          {KindFollows, `{"format":"recpipeline.follows"}` + "\n", "version"},
		"catalog without dim":      {KindCatalog, `{"format":"recpipeline.catalog","version":1}` + "\n", "feature_dim"},
		"users with negative dim":  {KindUsers, `{"format":"recpipeline.users","version":1,"feature_dim":-1}` + "\n", "feature_dim"},
		"events with feature dim":  {KindEvents, `{"format":"recpipeline.events","version":1,"feature_dim":3}` + "\n", "feature_dim"},
		"header is malformed JSON": {KindEvents, `{"format":` + "\n", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, strict := range []bool{true, false} {
				_, _, err := readKind(tc.kind, tc.text, ReadOptions{Strict: strict})
				var re *RowError
				if !errors.As(err, &re) || re.Line != 1 || re.Field != tc.field {
					t.Errorf("strict=%v: got %v, want a header error at line 1 field %q", strict, err, tc.field)
				}
			}
		})
	}
}

func TestLenientKeepsFirstErrors(t *testing.T) {
	var b strings.Builder
	b.WriteString(eventsHeader + "\n\n") // a blank line is skipped but counted
	for j := range 10 {
		b.WriteString(goodEvent + "\n")
		b.WriteString(`{"user":"u` + string(rune('0'+j)) + `"}` + "\n")
	}
	rows, rep, err := readKind(KindEvents, b.String(), ReadOptions{MaxErrors: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rows != 10 || rep.Skipped != 10 || len(rep.Errors) != 3 {
		t.Fatalf("got %d rows, %d skipped, %d kept; want 10, 10, 3", rows, rep.Skipped, len(rep.Errors))
	}
	for j, e := range rep.Errors {
		if want := 4 + 2*j; e.Line != want {
			t.Errorf("error %d at line %d, want %d", j, e.Line, want)
		}
	}
	_, rep, _ = readKind(KindEvents, b.String(), ReadOptions{MaxErrors: -1})
	if rep.Skipped != 10 || len(rep.Errors) != 0 {
		t.Errorf("MaxErrors -1: %d skipped, %d kept; want 10, 0", rep.Skipped, len(rep.Errors))
	}
}

func TestLineTooLong(t *testing.T) {
	text := eventsHeader + "\n" + goodEvent + "\n" + `{"user":"` + strings.Repeat("x", 2000) + `"}` + "\n"
	for _, strict := range []bool{true, false} {
		_, _, err := readKind(KindEvents, text, ReadOptions{Strict: strict, MaxLineBytes: 1024})
		var re *RowError
		if !errors.As(err, &re) || re.Line != 3 {
			t.Errorf("strict=%v: got %v, want a fatal error at line 3", strict, err)
		}
	}
}

func TestWriterRejectsBadRows(t *testing.T) {
	cases := map[string]struct {
		write func() error
		field string
	}{
		"event without user": {func() error {
			w := must2(NewEventWriter(io.Discard))
			return w.Write(Event{Item: "i1", Type: Click, Time: t0})
		}, "user"},
		"event with invalid type": {func() error {
			w := must2(NewEventWriter(io.Discard))
			return w.Write(Event{User: "u1", Item: "i1", Time: t0})
		}, "type"},
		"events out of order": {func() error {
			w := must2(NewEventWriter(io.Discard))
			must2(0, w.Write(Event{User: "u1", Item: "i1", Type: Click, Time: t0}))
			return w.Write(Event{User: "u1", Item: "i1", Type: Click, Time: t0.Add(-time.Second)})
		}, "time"},
		"item with wrong width": {func() error {
			w := must2(NewCatalogWriter(io.Discard, 2))
			return w.Write(Item{ID: "i1", Author: "a1", Created: t0, Features: []float32{1}})
		}, "features"},
		"item with NaN risk": {func() error {
			w := must2(NewCatalogWriter(io.Discard, 0))
			return w.Write(Item{ID: "i1", Author: "a1", Created: t0, IntegrityRisk: nanValue()})
		}, "integrity_risk"},
		"follow without author": {func() error {
			w := must2(NewFollowWriter(io.Discard))
			return w.Write(FollowEdge{User: "u1"})
		}, "author"},
		"user with invalid UTF-8": {func() error {
			w := must2(NewUserWriter(io.Discard, 0))
			return w.Write(User{ID: "\xff"})
		}, "id"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var re *RowError
			if err := tc.write(); !errors.As(err, &re) || re.Field != tc.field {
				t.Errorf("got %v, want a *RowError on field %q", err, tc.field)
			}
		})
	}
}

func nanValue() float64 { z := 0.0; return z / z }

func TestMovieLens(t *testing.T) {
	cases := map[string]struct {
		file    string
		content string
		// ratings, events, likes read leniently; bad line and column
		ratings, events, likes int
		badLine                int
		badField               string
	}{
		"u.data": {
			file:    "u.data",
			content: "196\t242\t3\t881250949\n186\t302\t4\t891717742\n22\t377\t1\t878887116\n244\t51\tx\t880606923\n",
			ratings: 3, events: 7, likes: 1, badLine: 4, badField: "rating",
		},
		"ratings.csv": {
			file:    "ratings.csv",
			content: "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n1,6,3.5,964982224\n1,47,5.0\n",
			ratings: 3, events: 8, likes: 2, badLine: 5, badField: "",
		},
		"ratings.dat": {
			file:    "ratings.dat",
			content: "1::1193::5::978300760\n1::661::3::978302109\n::914::3::978301968\n",
			ratings: 2, events: 5, likes: 1, badLine: 3, badField: "user",
		},
		"gzipped u.data": {
			file:    "u.data.gz",
			content: "196\t242\t3\t881250949\n186\t302\t4\t-5\n",
			ratings: 1, events: 2, likes: 0, badLine: 2, badField: "timestamp",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), tc.file)
			data := []byte(tc.content)
			if strings.HasSuffix(tc.file, ".gz") {
				var b bytes.Buffer
				zw := gzip.NewWriter(&b)
				_, err := zw.Write(data)
				must(t, err)
				must(t, zw.Close())
				data = b.Bytes()
			}
			must(t, os.WriteFile(path, data, 0o644))

			var evs []Event
			rep, err := ReadMovieLens(path, MovieLensAuto, ReadOptions{}, func(e Event) error { evs = append(evs, e); return nil })
			must(t, err)
			likes := 0
			for _, e := range evs {
				if e.Type == Like {
					likes++
				}
			}
			if rep.Rows != tc.ratings || len(evs) != tc.events || likes != tc.likes {
				t.Errorf("got %d ratings, %d events, %d likes; want %d, %d, %d", rep.Rows, len(evs), likes, tc.ratings, tc.events, tc.likes)
			}
			if rep.Skipped != 1 || rep.Errors[0].Line != tc.badLine || rep.Errors[0].Field != tc.badField {
				t.Errorf("lenient report %+v, want one bad row at line %d field %q", rep, tc.badLine, tc.badField)
			}
			if len(evs) >= 2 && (evs[0].Type != Impression || evs[1].Type != Click || evs[0].User != evs[1].User || !evs[0].Time.Equal(evs[1].Time)) {
				t.Errorf("a rating must start with an impression and a click at its time, got %+v", evs[:2])
			}

			_, err = ReadMovieLens(path, MovieLensAuto, ReadOptions{Strict: true}, func(Event) error { return nil })
			var re *RowError
			if !errors.As(err, &re) || re.Line != tc.badLine || !strings.Contains(re.Error(), tc.file) {
				t.Errorf("strict: got %v, want an error naming %s:%d", err, tc.file, tc.badLine)
			}
		})
	}
}

func TestMovieLensEventsSortIntoALog(t *testing.T) {
	var evs []Event
	text := "2\t10\t5\t200\n1\t11\t2\t100\n"
	_, err := ScanMovieLens(strings.NewReader(text), "u.data", MovieLensTab, ReadOptions{Strict: true}, func(e Event) error { evs = append(evs, e); return nil })
	must(t, err)
	SortEvents(evs)
	var b bytes.Buffer
	w := must2(NewEventWriter(&b))
	for _, e := range evs {
		must(t, w.Write(e))
	}
	must(t, w.Close())
	got := readAll(t, must2(NewEventReader(&b, "log", ReadOptions{Strict: true})))
	want := []EventType{Impression, Click, Impression, Click, Like}
	for j, e := range got {
		if e.Type != want[j] {
			t.Errorf("row %d is %s, want %s", j, e.Type, want[j])
		}
	}
	if got[0].User != "1" || got[4].User != "2" {
		t.Errorf("log not in time order: %+v", got)
	}
}

func TestMovieLensBadCSVHeader(t *testing.T) {
	_, err := ScanMovieLens(strings.NewReader("user,item,rating,ts\n1,2,3,4\n"), "ratings.csv", MovieLensAuto, ReadOptions{}, func(Event) error { return nil })
	var re *RowError
	if !errors.As(err, &re) || re.Line != 1 {
		t.Errorf("got %v, want a fatal error at line 1", err)
	}
}

func FuzzReadEvents(f *testing.F) {
	for _, s := range []string{
		goodEvent,
		`{"user":"u1","type":"follow","time":"2025-01-01T00:00:00.5+02:00","author":"a1"}`,
		`{"user":"u\u0000","item":"i\"","type":"see_less","time":"2025-01-01T00:00:00Z"}`,
		`{"user":1}`,
		`[]`,
		`{"user":"u","item":"i","type":"click","time":"0000-01-01T00:00:00Z"}`,
		`{"user":"u","item":"i","type":"like","time":"9999-12-31T23:59:59.999999999-23:59"}`,
		"{\"user\":\"u\xff\",\"item\":\"i\",\"type\":\"share\",\"time\":\"2025-01-01T00:00:00Z\"}",
		`{`,
		``,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		for _, strict := range []bool{true, false} {
			r, err := NewEventReader(strings.NewReader(eventsHeader+"\n"+line+"\n"), "fuzz", ReadOptions{Strict: strict})
			if err != nil {
				t.Fatal(err)
			}
			rows, err := r.ReadAll()
			if err != nil && strict {
				var re *RowError
				if !errors.As(err, &re) || re.Line < 2 {
					t.Fatalf("strict error %v is not a *RowError on a row", err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("lenient read failed: %v", err)
			}
			// A row that reads must write back and read again unchanged.
			var b bytes.Buffer
			w := must2(NewEventWriter(&b))
			for _, ev := range rows {
				if err := w.Write(ev); err != nil {
					t.Fatalf("row %+v read but does not write: %v", ev, err)
				}
			}
			must(t, w.Close())
			again, err := must2(NewEventReader(&b, "again", ReadOptions{Strict: true})).ReadAll()
			if err != nil || len(again) != len(rows) {
				t.Fatalf("rewritten rows do not read back: %v", err)
			}
			for j := range rows {
				if !again[j].Time.Equal(rows[j].Time) || again[j].User != rows[j].User || again[j].Item != rows[j].Item || again[j].Type != rows[j].Type || again[j].Author != rows[j].Author {
					t.Fatalf("row changed on rewrite: %+v became %+v", rows[j], again[j])
				}
			}
		}
	})
}

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
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

// mixedEvents is a log of n rows spanning many batches, with blank lines,
// malformed rows and rows out of time order after its first clean rows.
func mixedEvents(n, clean int) string {
	var b strings.Builder
	b.WriteString(eventsHeader + "\n")
	for j := range n {
		ts := t0.Add(time.Duration(j) * time.Second)
		switch {
		case j < clean:
			fmt.Fprintf(&b, `{"user":"u%d","item":"i%d","type":"like","time":%q}`+"\n", j, j%500, ts.Format(time.RFC3339Nano))
		case j%97 == 13:
			b.WriteString(`{"user":"u1","item":` + "\n") // malformed
		case j%211 == 7:
			ts = ts.Add(-time.Hour) // before the previous row: a check of the order
			fmt.Fprintf(&b, `{"user":"u%d","item":"i%d","type":"click","time":%q}`+"\n", j, j, ts.Format(time.RFC3339Nano))
		case j%53 == 0:
			b.WriteString("\n")
		default:
			fmt.Fprintf(&b, `{"user":"u%d","item":"i%d","type":"like","time":%q}`+"\n", j, j%500, ts.Format(time.RFC3339Nano))
		}
	}
	return b.String()
}

// mixedCatalog is a catalog of n rows with duplicate ids far from their
// first rows (in other batches) and rows with bad features after its
// first clean rows.
func mixedCatalog(n, clean int) string {
	var b strings.Builder
	b.WriteString(catalogHeader + "\n")
	for j := range n {
		id := j
		switch {
		case j < clean:
		case j%401 == 400:
			id = j - 399 // a duplicate
		case j%89 == 5:
			fmt.Fprintf(&b, `{"id":"i%d","author":"a1","created":"2025-01-01T00:00:00Z","features":[1,"x"],"integrity_risk":0.5}`+"\n", id)
			continue
		}
		fmt.Fprintf(&b, `{"id":"i%d","author":"a%d","created":"2025-01-01T00:00:00Z","features":[%d,2],"integrity_risk":0.5}`+"\n", id, j%7, j)
	}
	return b.String()
}

type readResult[T any] struct {
	rows []T
	rep  Report
	err  error
}

func readWith[T any](t *testing.T, open func(io.Reader, string, ReadOptions) (*Reader[T], error), text string, opts ReadOptions) readResult[T] {
	t.Helper()
	r, err := open(strings.NewReader(text), "f.jsonl", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rows, err := r.ReadAll()
	_, again := r.Next() // the error is sticky
	if err != nil && again != err {
		t.Errorf("Next after %v returned %v", err, again)
	}
	return readResult[T]{rows, r.Report(), err}
}

// TestWorkersReadLikeOne reads files with bad rows of every sort with one
// and with several parsing goroutines: rows, report and errors are the
// same, in file order.
func TestWorkersReadLikeOne(t *testing.T) {
	for _, strict := range []bool{false, true} {
		// Strict reads end at the first bad row: one early, one after
		// several batches per worker.
		clean := 0
		if strict {
			clean = 4000
		}
		events, catalog := mixedEvents(5000, clean), mixedCatalog(5000, clean)
		for _, workers := range []int{2, 3, 8} {
			name := fmt.Sprintf("strict=%v/workers=%d", strict, workers)
			t.Run("events/"+name, func(t *testing.T) {
				opts := ReadOptions{Strict: strict, MaxErrors: 1000}
				one := readWith(t, NewEventReader, events, withWorkers(opts, 1))
				many := readWith(t, NewEventReader, events, withWorkers(opts, workers))
				compareReads(t, one, many, strict)
			})
			t.Run("catalog/"+name, func(t *testing.T) {
				opts := ReadOptions{Strict: strict, MaxErrors: 1000}
				one := readWith(t, NewCatalogReader, catalog, withWorkers(opts, 1))
				many := readWith(t, NewCatalogReader, catalog, withWorkers(opts, workers))
				compareReads(t, one, many, strict)
			})
		}
	}
}

func withWorkers(o ReadOptions, n int) ReadOptions { o.Workers = n; return o }

func compareReads[T any](t *testing.T, one, many readResult[T], strict bool) {
	t.Helper()
	if strict {
		if one.err == nil || many.err == nil || one.err.Error() != many.err.Error() {
			t.Fatalf("errors: one worker %v, several %v", one.err, many.err)
		}
	} else if one.err != nil || many.err != nil {
		t.Fatalf("errors: one worker %v, several %v", one.err, many.err)
	}
	if !strict && (one.rep.Skipped < 50 || len(one.rows) < 4000) {
		t.Fatalf("the file should hold many bad rows among good ones: %d rows, %d skipped", len(one.rows), one.rep.Skipped)
	}
	if strict && len(one.rows) < 4000 {
		t.Fatalf("%d rows before the first bad one, want 4000", len(one.rows))
	}
	if !reflect.DeepEqual(one.rows, many.rows) {
		t.Errorf("rows differ: %d with one worker, %d with several", len(one.rows), len(many.rows))
	}
	if !reflect.DeepEqual(one.rep, many.rep) {
		t.Errorf("reports differ: one worker %d rows %d skipped, several %d rows %d skipped", one.rep.Rows, one.rep.Skipped, many.rep.Rows, many.rep.Skipped)
		for k := range min(len(one.rep.Errors), len(many.rep.Errors)) {
			if one.rep.Errors[k].Error() != many.rep.Errors[k].Error() {
				t.Errorf("first differing error %d: %v against %v", k, one.rep.Errors[k], many.rep.Errors[k])
				break
			}
		}
	}
}

// TestWorkersLineTooLong: a line over the limit ends a parallel read at its
// line, after the good rows before it.
func TestWorkersLineTooLong(t *testing.T) {
	text := mixedEvents(2000, 0) + `{"user":"` + strings.Repeat("x", 2000) + `"}` + "\n" + goodEvent + "\n"
	one := readWith(t, NewEventReader, text, ReadOptions{MaxLineBytes: 1024, Workers: 1})
	many := readWith(t, NewEventReader, text, ReadOptions{MaxLineBytes: 1024, Workers: 4})
	var re *RowError
	if one.err == nil || many.err == nil || one.err.Error() != many.err.Error() {
		t.Fatalf("errors: one worker %v, several %v", one.err, many.err)
	}
	if re, _ = many.err.(*RowError); re == nil || re.Line != 2002 {
		t.Errorf("error %v, want a *RowError at line 2002", many.err)
	}
	if len(one.rows) != len(many.rows) || len(many.rows) < 1900 {
		t.Errorf("rows before the long line: %d with one worker, %d with several", len(one.rows), len(many.rows))
	}
}

// TestWorkersStop: a reader closed part-way, or dropped without Close, stops
// its goroutines.
func TestWorkersStop(t *testing.T) {
	text := mixedEvents(20000, 0)
	base := runtime.NumGoroutine()
	partRead := func() *Reader[Event] {
		r, err := NewEventReader(strings.NewReader(text), "f.jsonl", ReadOptions{Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			if _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
		}
		if n := runtime.NumGoroutine(); n < base+5 {
			t.Fatalf("%d goroutines while reading, want the splitter and 4 workers beyond %d", n, base)
		}
		return r
	}

	r := partRead()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err == nil {
		t.Error("Next after Close returned a row")
	}
	waitGoroutines(t, base, "after Close")

	partRead() // dropped
	waitGoroutines(t, base, "after the reader was dropped")
}

func waitGoroutines(t *testing.T, want int, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines, want %d", when, runtime.NumGoroutine(), want)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

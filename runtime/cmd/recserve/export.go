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

package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/catalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/datalog"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// The files of a dataset directory (runtime/internal/dataset/FORMAT.md).
const (
	catalogFile = "catalog.jsonl"
	usersFile   = "users.jsonl"
	followsFile = "follows.jsonl"
	eventsFile  = "events.jsonl"
)

// defaultMaxEvents is --max-events' default: about 2 GB of kept events
// (keptEvent), besides the IDs.
const defaultMaxEvents = 50_000_000

// exportUsage is the synopsis of `recserve export`.
const exportUsage = "recserve export --logs DIR --catalog URI --out DIR [--since RFC3339] [--until RFC3339] [--window DURATION] [--max-events N]"

// runExport is `recserve export`: it turns the frontend's logs
// (deploy.logging, package datalog) into a dataset directory that rectrain
// reads:
//
//   - catalog.jsonl: the catalog of --catalog, then the items the logs'
//     new_item events published, in order of publication (features of
//     the catalog's feature_dim, all zero; created at their first
//     publication), each with the integrity risk the logs last set (a
//     catalog item keeps its own when they set none);
//   - users.jsonl: every user of the exported events, in order of first
//     event, with the features of the catalog's user table (zeros for
//     users it lacks; feature_dim 0 when it has none);
//   - follows.jsonl: empty: the follows are events of the log;
//   - events.jsonl: the events of every events log file of --logs, current
//     and rotated, of every host, within [--since, --until) and, with
//     --window, at or after the newest of them less the window; at most
//     the newest --max-events of them; sorted by time (a stable sort:
//     files in datalog.List's order, rows in file order). Events of items
//     neither in the catalog nor published are dropped and counted; a
//     follow or unfollow keeps its author and loses the unknown item.
//
// The directory is written beside --out and renamed into place, replacing
// a previous dataset there; it prints a summary line. It fails on a
// missing or unreadable --logs, and on an empty result.
func runExport(args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("recserve export", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: "+exportUsage+"\n\n"+
			"Writes the events the frontend logged in DIR (deploy.logging.dir) as a dataset directory rectrain reads:\n"+
			"the catalog of URI with the items published in the logs, the users of the events, and the events sorted by time.\n\n")
		fl.PrintDefaults()
	}
	logs := fl.String(config.FlagExportLogs, "", "Directory of the frontend's logs: a path or file:///path.")
	catURI := fl.String(config.FlagExportCatalog, "", "The catalog the logged events refer to, as deploy.catalog: a directory, a catalog file, or an http(s) URL.")
	out := fl.String(config.FlagExportOut, "", "Dataset directory to write: a new one, an empty one or a previous export, which is replaced.")
	since := fl.String("since", "", "Export only events at or after this RFC 3339 time.")
	until := fl.String("until", "", "Export only events before this RFC 3339 time, and the items published before it.")
	window := fl.Duration(config.FlagExportWindow, 0, "Export only events at or after the newest event logged (before --until) less this duration, e.g. 720h; 0 for no bound.")
	maxEvents := fl.Int("max-events", defaultMaxEvents, "Export at most this many events, the newest, holding no more in memory (about 40 bytes each, besides the IDs).")
	logLevel := fl.String("log-level", "info", "debug, info, warn or error.")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *logs == "" || *catURI == "" || *out == "" || fl.NArg() > 0 {
		return errors.New("usage: " + exportUsage)
	}
	if *window < 0 {
		return fmt.Errorf("--window %s is negative: give a duration such as 720h, or 0 for no bound", *window)
	}
	if *maxEvents < 1 {
		return fmt.Errorf("--max-events %d must be at least 1", *maxEvents)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level: %w", err)
	}
	x := &exporter{catalog: *catURI, window: *window, maxEvents: *maxEvents,
		log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}
	var err error
	if x.logs, err = datalog.LocalDir(*logs); err != nil {
		return fmt.Errorf("--logs: %w", err)
	}
	if x.out, err = localPath(*out); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if x.since, err = parseTimeFlag("since", *since); err != nil {
		return err
	}
	if x.until, err = parseTimeFlag("until", *until); err != nil {
		return err
	}
	if !x.since.IsZero() && !x.until.IsZero() && !x.since.Before(x.until) {
		return fmt.Errorf("--since %s is not before --until %s", *since, *until)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := x.run(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sum)
	return nil
}

func parseTimeFlag(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q is not an RFC 3339 time", name, v)
	}
	return t, nil
}

// localPath returns the path of a local file URI or path.
func localPath(uri string) (string, error) {
	loc, err := fetch.Parse(uri)
	if err != nil {
		return "", err
	}
	if loc.URL != nil {
		return "", fmt.Errorf("%q is not local", fetch.Redact(uri))
	}
	return filepath.Clean(loc.Path), nil
}

// exporter is one run of `recserve export`.
//
// The logs may hold tens of millions of events (deploy.logging.maxFiles
// files of up to maxFileBytes each), out of time order; the export holds
// the events it keeps in memory to sort them, bounded two ways in one
// pass over the files:
//   - --window: the start of the window, the newest event time read so
//     far less the window, only moves forward as the files are read, so an
//     event before it is dropped as it is read, and the events kept before
//     it moved are dropped at the end. (A first pass for the newest time
//     would read and parse the whole logs twice.)
//   - --max-events N: the events kept are a plain slice until it holds N;
//     it then becomes a min-heap by (time, order read), which pops the
//     events that fell out of the window and otherwise lets a newer event
//     take the place of the oldest. So no more than N events are held,
//     and those kept are exactly the newest N of the window, ties going
//     to those read last, as a stable sort of them all would keep.
//
// A kept event is a keptEvent of 40 bytes, half a dataset.Event, its IDs
// indexes into one table of the distinct IDs of the events ever kept.
type exporter struct {
	logs, catalog, out string
	since, until       time.Time
	window             time.Duration
	maxEvents          int
	log                *slog.Logger

	cat       *catalog.Catalog
	published []dataset.Item      // items of new_item events, in order
	risks     map[string]float64  // the risk the logs last set, by item
	known     map[string]struct{} // published items
	files     int                 // log files read
	bad       int                 // rows of the logs skipped as bad
	unknown   int                 // events of unknown items dropped
	unknownEx map[string]struct{} // a few of those items, for the warning

	newest time.Time   // of the events read before --until
	start  time.Time   // of the window: --since, or newest less --window if later
	events []keptEvent // kept; sorted once read
	heaped bool        // events is a min-heap (keptEvent.less)
	read   uint64      // events read within the window, the next one's order
	// cappedAt is the newest time of an event --max-events dropped; such
	// an event is in the final window if it is not before start.
	cappedAt time.Time
	capped   bool
	ids      []string          // ids[0] is ""
	idOf     map[string]uint32 // index of each ID in ids
	users    []uint32          // of the events, in order of first event
}

// keptEvent is an event the export keeps: a dataset.Event in half the
// memory, its IDs indexes into exporter.ids.
type keptEvent struct {
	sec                int64
	seq                uint64 // the order read: files in datalog.List's order, rows in file order
	nsec               int32
	user, item, author uint32
	typ                dataset.EventType
}

// compareKept orders events by time, then by the order read.
func compareKept(a, b *keptEvent) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	if c := cmp.Compare(a.nsec, b.nsec); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

func (e *keptEvent) less(o *keptEvent) bool { return compareKept(e, o) < 0 }

func (e *keptEvent) time() time.Time { return time.Unix(e.sec, int64(e.nsec)).UTC() }

// exportSummary is what an export wrote.
type exportSummary struct {
	out                                    string
	events, users, items, published, files int
	unknown, bad                           int
	window                                 time.Duration
	start                                  time.Time // of the window, with window
	maxEvents                              int       // with capped
	capped                                 bool
	oldest                                 time.Time // of the events, with capped
}

func (s exportSummary) String() string {
	str := fmt.Sprintf("exported %d events, %d users, %d items (%d published in the logs) from %d log files to %s; dropped %d events of unknown items and %d bad rows",
		s.events, s.users, s.items, s.published, s.files, s.out, s.unknown, s.bad)
	if s.window > 0 {
		str += fmt.Sprintf("; the window (--window %s) starts at %s", s.window, s.start.Format(time.RFC3339Nano))
	}
	if s.capped {
		str += fmt.Sprintf("; kept only the newest %d events (--max-events), from %s", s.maxEvents, s.oldest.Format(time.RFC3339Nano))
	}
	return str
}

func (x *exporter) run(ctx context.Context) (exportSummary, error) {
	fi, err := os.Stat(x.logs)
	switch {
	case err != nil:
		return exportSummary{}, fmt.Errorf("--logs: %w", err)
	case !fi.IsDir():
		return exportSummary{}, fmt.Errorf("--logs: %s is not a directory", x.logs)
	}
	files, err := datalog.List(x.logs)
	if err != nil {
		return exportSummary{}, fmt.Errorf("--logs: %w", err)
	}
	if x.cat, err = catalog.Load(ctx, x.catalog, catalog.Options{}); err != nil {
		return exportSummary{}, fmt.Errorf("--catalog: %w", err)
	}
	x.risks, x.known, x.unknownEx = map[string]float64{}, map[string]struct{}{}, map[string]struct{}{}
	x.ids, x.idOf, x.start = []string{""}, map[string]uint32{"": 0}, x.since
	if err := x.readItems(files); err != nil {
		return exportSummary{}, err
	}
	if err := x.readEvents(files); err != nil {
		return exportSummary{}, err
	}
	if len(x.events) == 0 {
		return exportSummary{}, fmt.Errorf("no events to export: %d log files in %s hold none%s of an item the catalog or the logs know (%d dropped as of unknown items, %d bad rows)",
			x.files, x.logs, x.bounds(), x.unknown, x.bad)
	}
	if x.unknown > 0 {
		ex := make([]string, 0, len(x.unknownEx))
		for it := range x.unknownEx {
			ex = append(ex, it)
		}
		x.log.Warn("Dropped the events of items neither in the catalog nor published in the logs", "events", x.unknown, "someItems", ex)
	}
	if err := x.write(); err != nil {
		return exportSummary{}, err
	}
	sum := exportSummary{out: x.out, events: len(x.events), users: len(x.users), items: x.cat.Len() + len(x.published),
		published: len(x.published), files: x.files, unknown: x.unknown, bad: x.bad,
		window: x.window, start: x.start, maxEvents: x.maxEvents, capped: x.capped}
	if x.capped {
		sum.oldest = x.events[0].time()
	}
	return sum, nil
}

// bounds describes --since, --until and --window for messages.
func (x *exporter) bounds() string {
	var s string
	switch {
	case x.window > 0 && !x.start.IsZero():
		s += " at or after " + x.start.Format(time.RFC3339Nano) + " (--window " + x.window.String() + ")"
	case !x.since.IsZero():
		s += " at or after " + x.since.Format(time.RFC3339Nano)
	}
	if !x.until.IsZero() {
		s += " before " + x.until.Format(time.RFC3339Nano)
	}
	return s
}

// id returns the index of an ID in x.ids, adding it.
func (x *exporter) id(s string) uint32 {
	if i, ok := x.idOf[s]; ok {
		return i
	}
	i := uint32(len(x.ids))
	x.ids = append(x.ids, s)
	x.idOf[s] = i
	return i
}

// noteBad counts a file's bad rows and warns of them.
func (x *exporter) noteBad(path string, rep dataset.Report) {
	x.files++
	if rep.Skipped == 0 {
		return
	}
	x.bad += rep.Skipped
	first := make([]string, len(rep.Errors))
	for i, e := range rep.Errors {
		first[i] = e.Error()
	}
	x.log.Warn("Skipped bad rows of a log file", "file", path, "rows", rep.Skipped, "first", first)
}

// readItems reads the items logs: the items published before --until
// join the catalog, and the risks set before it are kept. A publication
// of an item the catalog or an earlier publication holds changes
// nothing, and one sets a risk only for an item without one, as in the
// engine and the store.
func (x *exporter) readItems(files []datalog.File) error {
	var evs []datalog.ItemEvent
	for _, f := range files {
		if f.Log != datalog.ItemsLog {
			continue
		}
		rep, err := datalog.ReadItemEvents(f.Path, func(ev datalog.ItemEvent) error {
			if x.until.IsZero() || ev.Time.Before(x.until) {
				evs = append(evs, ev)
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			x.log.Warn("A log file was removed while the export ran (rotated away)", "file", f.Path)
			continue
		}
		if err != nil {
			return err
		}
		x.noteBad(f.Path, rep)
	}
	sortStable(evs, func(ev datalog.ItemEvent) time.Time { return ev.Time })
	dim := x.cat.FeatureDim()
	zeros := make([]float32, dim)
	for _, ev := range evs {
		_, inCatalog := x.cat.Ordinal(ev.Item)
		_, published := x.known[ev.Item]
		switch ev.Type {
		case store.NewItem:
			if inCatalog || published {
				continue // published again: the item and its risk stand
			}
			if _, ok := x.risks[ev.Item]; !ok {
				x.risks[ev.Item] = ev.Risk
			}
			x.known[ev.Item] = struct{}{}
			x.published = append(x.published, dataset.Item{ID: ev.Item, Author: ev.Author, Created: ev.Time, Features: zeros})
		case store.Integrity:
			x.risks[ev.Item] = ev.Risk
		}
	}
	return nil
}

// readEvents reads the events logs and keeps, sorted, the events within
// the window whose item is known, the newest --max-events of them (see
// exporter). With --window, the events of unknown items counted are those
// within the window as it stood when they were read.
func (x *exporter) readEvents(files []datalog.File) error {
	for _, f := range files {
		if f.Log != datalog.EventsLog {
			continue
		}
		rep, err := datalog.ReadEvents(f.Path, func(ev dataset.Event) error {
			if ev.Time.Before(x.since) || (!x.until.IsZero() && !ev.Time.Before(x.until)) {
				return nil
			}
			if x.window > 0 && ev.Time.After(x.newest) {
				x.newest = ev.Time
				if s := x.newest.Add(-x.window); s.After(x.start) {
					x.start = s
				}
			}
			if ev.Time.Before(x.start) {
				return nil
			}
			if ev.Item != "" && !x.knows(ev.Item) {
				if ev.Type != dataset.Follow && ev.Type != dataset.Unfollow {
					x.unknown++
					if len(x.unknownEx) < 5 {
						x.unknownEx[ev.Item] = struct{}{}
					}
					return nil
				}
				ev.Item = ""
			}
			x.keep(&ev)
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) {
			x.log.Warn("A log file was removed while the export ran (rotated away)", "file", f.Path)
			continue
		}
		if err != nil {
			return err
		}
		x.noteBad(f.Path, rep)
	}
	x.events = slices.DeleteFunc(x.events, func(e keptEvent) bool { return e.time().Before(x.start) })
	x.capped = x.capped && !x.cappedAt.Before(x.start)
	slices.SortFunc(x.events, func(a, b keptEvent) int { return compareKept(&a, &b) })
	seen := make([]bool, len(x.ids))
	for _, e := range x.events {
		if !seen[e.user] {
			seen[e.user] = true
			x.users = append(x.users, e.user)
		}
	}
	return nil
}

// keep keeps an event within the window as it stands: see exporter.
func (x *exporter) keep(ev *dataset.Event) {
	e := keptEvent{sec: ev.Time.Unix(), nsec: int32(ev.Time.Nanosecond()), seq: x.read, typ: ev.Type}
	x.read++
	if x.heaped {
		for len(x.events) > 0 && x.events[0].time().Before(x.start) {
			x.popOldest()
		}
		if len(x.events) == x.maxEvents {
			// The newest maxEvents are kept: e, read last, goes before
			// the oldest kept unless it is older.
			if e.less(&x.events[0]) {
				x.dropCapped(&e)
				return
			}
			x.dropCapped(&x.events[0])
			x.popOldest()
		}
	}
	e.user, e.item, e.author = x.id(ev.User), x.id(ev.Item), x.id(ev.Author)
	x.events = append(x.events, e)
	if x.heaped {
		siftUp(x.events, len(x.events)-1)
	} else if len(x.events) == x.maxEvents {
		for i := len(x.events)/2 - 1; i >= 0; i-- {
			siftDown(x.events, i)
		}
		x.heaped = true
	}
}

// dropCapped notes an event --max-events drops.
func (x *exporter) dropCapped(e *keptEvent) {
	if t := e.time(); !x.capped || t.After(x.cappedAt) {
		x.cappedAt = t
	}
	x.capped = true
}

// popOldest removes the root of the heap of events.
func (x *exporter) popOldest() {
	n := len(x.events) - 1
	x.events[0] = x.events[n]
	x.events = x.events[:n]
	siftDown(x.events, 0)
}

// siftUp and siftDown restore the min-heap h (keptEvent.less) after h[i]
// changed.
func siftUp(h []keptEvent, i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].less(&h[p]) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func siftDown(h []keptEvent, i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && h[c+1].less(&h[c]) {
			c++
		}
		if !h[c].less(&h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

func (x *exporter) knows(item string) bool {
	if _, ok := x.cat.Ordinal(item); ok {
		return true
	}
	_, ok := x.known[item]
	return ok
}

// write writes the dataset into a new directory beside --out and renames
// it into place.
func (x *exporter) write() error {
	if err := checkOut(x.out); err != nil {
		return err
	}
	parent, base := filepath.Split(x.out)
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("failed to create the parent of --out: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+base+".tmp-")
	if err != nil {
		return fmt.Errorf("failed to create the output directory: %w", err)
	}
	if err := x.writeFiles(tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	if err := replaceDir(tmp, x.out); err != nil {
		_ = os.RemoveAll(tmp)
		return err
	}
	return nil
}

func (x *exporter) writeFiles(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create the output directory: %w", err)
	}
	err := writeFile(dir, catalogFile, func(w io.Writer) error {
		cw, err := dataset.NewCatalogWriter(w, x.cat.FeatureDim())
		if err != nil {
			return err
		}
		for i := range uint32(x.cat.Len()) {
			it := dataset.Item{ID: x.cat.ID(i), Author: x.cat.Author(i), Created: x.cat.Created(i), Features: x.cat.Features(i), IntegrityRisk: float64(x.cat.Risk(i))}
			if r, ok := x.risks[it.ID]; ok {
				it.IntegrityRisk = r
			}
			if err := cw.Write(it); err != nil {
				return err
			}
		}
		for _, it := range x.published {
			it.IntegrityRisk = x.risks[it.ID]
			if err := cw.Write(it); err != nil {
				return err
			}
		}
		return cw.Close()
	})
	if err != nil {
		return err
	}
	err = writeFile(dir, usersFile, func(w io.Writer) error {
		dim := x.cat.UserFeatureDim()
		uw, err := dataset.NewUserWriter(w, dim)
		if err != nil {
			return err
		}
		zeros := make([]float32, dim)
		for _, u := range x.users {
			id := x.ids[u]
			feat, ok := x.cat.UserFeatures(id)
			if !ok {
				feat = zeros
			}
			if err := uw.Write(dataset.User{ID: id, Features: feat}); err != nil {
				return err
			}
		}
		return uw.Close()
	})
	if err != nil {
		return err
	}
	err = writeFile(dir, followsFile, func(w io.Writer) error {
		fw, err := dataset.NewFollowWriter(w)
		if err != nil {
			return err
		}
		return fw.Close()
	})
	if err != nil {
		return err
	}
	return writeFile(dir, eventsFile, func(w io.Writer) error {
		ew, err := dataset.NewEventWriter(w)
		if err != nil {
			return err
		}
		for i := range x.events {
			e := &x.events[i]
			ev := dataset.Event{User: x.ids[e.user], Item: x.ids[e.item], Author: x.ids[e.author], Type: e.typ, Time: e.time()}
			if err := ew.Write(ev); err != nil {
				return err
			}
		}
		return ew.Close()
	})
}

// writeFile writes dir/name and syncs it.
func writeFile(dir, name string, write func(io.Writer) error) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", name, err)
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", name, err)
	}
	return nil
}

// checkOut refuses an --out that holds anything but a dataset: the export
// replaces it whole.
func checkOut(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	for _, e := range entries {
		switch strings.TrimSuffix(e.Name(), ".gz") {
		case catalogFile, usersFile, followsFile, eventsFile:
			if !e.IsDir() {
				continue
			}
		}
		return fmt.Errorf("--out %s holds %s, which is not a dataset file: give a new directory, an empty one or a previous export", out, e.Name())
	}
	return nil
}

// replaceDir renames tmp to out, replacing a directory there: the old
// one is moved aside first and removed once the new one is in place.
func replaceDir(tmp, out string) error {
	old := ""
	if _, err := os.Lstat(out); err == nil {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("failed to move the previous %s aside: %w", out, err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			_ = os.Rename(old, out)
		}
		return fmt.Errorf("failed to rename the dataset into %s: %w", out, err)
	}
	if d, err := os.Open(filepath.Dir(out)); err == nil {
		_ = d.Sync() // the rename survives a crash
		_ = d.Close()
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("failed to remove the previous dataset: %w", err)
		}
	}
	return nil
}

// sortStable sorts by time, keeping the order of equal times.
func sortStable[T any](s []T, at func(T) time.Time) {
	slices.SortStableFunc(s, func(a, b T) int { return at(a).Compare(at(b)) })
}

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

// Package datalog writes the frontend's logs: the events the store accepted
// and a sample of the lists served, as rotating JSON Lines files that
// `recserve export` turns into a dataset rectrain learns from.
//
// # Files
//
// A Logger writes three logs into one directory (deploy.logging.dir). Each
// file is named after the log and the host name of the process, so that
// the replicas of a frontend can share the directory:
//
//	events.<host>.jsonl                     the log being written
//	events.<host>.<20060102T150405.000000000Z>.jsonl   a rotated file, named by the UTC time it was rotated at
//
// and likewise items.<host>… and served.<host>…. A file is rotated before
// a line would take it past deploy.logging.maxFileBytes (a line is never
// split; a single line longer than that makes a file of its own). A
// restarted process appends to its current files. Every file, the first
// as each one a rotation starts, begins with a header line naming its
// format and version, as the formats of runtime/internal/dataset/FORMAT.md
// do. Lines are buffered and reach the file at least every second, when a
// file is rotated and on Close. A file that ends in ".gz" is read as gzip
// (List and the readers accept such files; the Logger writes none).
//
// # Retention
//
// deploy.logging.maxFiles rotated files are kept per log, of all hosts
// together: the host names are pod names, which every rollout, restart and
// scale-down changes, so that a count per host would keep the files of
// every pod that ever ran. When a Logger opens a log, and after each
// rotation, it removes the oldest of the log's files beyond the newest
// maxFiles, counting
//   - the rotated files of every host, dated by the time in their names;
//   - the current files of other hosts not modified for StaleAfter (24
//     hours), dated by their modification time: those of processes that
//     are gone.
//
// A Logger never removes its own current file, and sets the modification
// time of its current files every hour, written to or not, so that other
// replicas never take them for stale (should one be removed all the same,
// it is started anew within the hour). The replicas prune the directory
// they share independently, at once as well: a file one of them removed
// first is no error to the others. So, once pruned, a log holds at most
// maxFiles files that are rotated or stale, beside the current files of the
// live replicas and of the processes gone within StaleAfter.
//
// # events: recpipeline.events
//
// The rows of events.jsonl of FORMAT.md, header included:
//
//	{"format":"recpipeline.events","version":1}
//	{"user":"u539","item":"i12979","type":"impression","time":"2025-01-01T00:03:57.123Z"}
//
// One row per impression, click, like, comment, share, see_less, follow or
// unfollow accepted, in the order the frontend accepted them. The times
// are the events' own (or, for an event posted without one, the time it
// was logged at, to the millisecond, as the store dates it), so they may
// go back from one row to the next: a file is an events.jsonl but for
// that rule, and `recserve export` sorts the rows of every file. An event
// the format cannot hold (a see_less of an author without an item, an
// ID longer than 256 bytes) is counted as skipped and not written.
//
// # items: recpipeline.item_events
//
// Publications (new_item) and integrity risks (integrity), which
// events.jsonl has no types for:
//
//	{"format":"recpipeline.item_events","version":1}
//	{"type":"new_item","item":"i99001","author":"a12","time":"2025-01-02T10:00:00Z","risk":0.01}
//	{"type":"integrity","item":"i99001","time":"2025-01-02T11:00:00Z","risk":1}
//
// Fields:
//   - type: new_item or integrity.
//   - item: the item, an ID as FORMAT.md defines them.
//   - author: the item's author; new_item only.
//   - time: when the event happened (RFC 3339, UTC).
//   - risk: the item's integrity risk, in [0, 1], as the event set it.
//
// # served: recpipeline.served
//
// One row per sampled served list (Served; live.servedSampleRate, chosen
// by a hash of the request id so that all replicas agree), here broken in
// two:
//
//	{"format":"recpipeline.served","version":1}
//	{"request_id":"4f1c…","user":"u7","arm":"control","revision":"3b9e…","time":"2025-01-02T10:00:00.5Z","precomputed":false,
//	 "items":[{"item":"i12","author":"a3","score":1.82,"sources":["for-you","trending"],"heads":{"click":0.31,"like":0.12}}]}
//
// Fields:
//   - request_id: the request's id.
//   - user: the user served.
//   - arm: the experiment arm, "" when the config runs no experiment.
//   - revision: the config revision that served the list.
//   - time: when the list was served (RFC 3339, UTC).
//   - precomputed: whether the list came from the precomputed lists rather
//     than from the live funnel.
//   - items: the list, in the order served; each with item, author, score
//     (the final ranking value, null when not finite), sources (the
//     retrieval sources that proposed it) and heads (the ranker's
//     probability of each head, {} when the ranker did not score it).
//
// # Hot path
//
// Events and Served are called on the request path and never wait for the
// disk: they encode the rows (Served only when sampled) and hand them to one
// writer goroutine through a bounded queue of QueueLen batches. When the
// queue is full the rows are dropped and counted
// (recpipeline_datalog_dropped_rows_total, Dropped). Both copy what they
// keep, so the caller may reuse its slices once they return.
package datalog

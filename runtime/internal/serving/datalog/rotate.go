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
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// The rotation is written here rather than taken from
// gopkg.in/natefinch/lumberjack.v2, the usual rotating writer, because
// lumberjack
//   - cannot write a header into the files it starts (it has no hook on
//     rotation), and every file of these logs must begin with one;
//   - sizes files in whole megabytes, while deploy.logging.maxFileBytes
//     counts bytes;
//   - names rotated files to the millisecond, so that two rotations within
//     one overwrite a file;
//   - rotates inside a Write, splitting nothing but not knowing lines: here
//     a file is rotated only between lines.

const (
	// ext is the extension of every log file.
	ext = ".jsonl"
	// stampLayout names a rotated file by its rotation time, UTC; names
	// sort as times do.
	stampLayout = "20060102T150405.000000000Z"
	// bufSize is the write buffer of each file.
	bufSize = 64 << 10
	// touchInterval is how often the writer sets the modification time of
	// its current files, written to or not, so that they never look
	// StaleAfter old to another replica.
	touchInterval = time.Hour
)

// StaleAfter is how long after its last modification another host's
// current file is taken for the file of a process that is gone (a pod
// replaced by a rollout, a restart or a scale-down): when a Logger prunes
// a log, such a file counts as a rotated file, dated by its modification
// time, and is removed once it is not among the newest maxFiles. A live
// Logger sets the modification time of its current files at least every
// hour (touchInterval), so that theirs never gets this old.
const StaleAfter = 24 * time.Hour

// rotator is one log's current file: it rotates the file by size, keeps
// the newest maxFiles rotated files of the log, of every host, and starts
// each file with header. It is used by the writer goroutine alone.
type rotator struct {
	dir      string
	log      Log
	host     string // files are dir/<log>.<host>.jsonl and dir/<log>.<host>.<stamp>.jsonl
	header   []byte
	maxBytes int64
	maxFiles int

	f       *os.File // nil when closed, or after a failure until the next write
	bw      *bufio.Writer
	size    int64     // of the file, the buffered bytes included
	touched time.Time // when the file's modification time was last set
}

func (r *rotator) base() string { return string(r.log) + "." + r.host }

func (r *rotator) path() string { return filepath.Join(r.dir, r.base()+ext) }

// open opens the current file for appending, writing the header into a
// new one, and sets its modification time (a file a restarted process
// appends to may be StaleAfter old). A file whose last line was cut short
// (a crash) gets a newline, so that the cut line stays a bad line of its
// own.
func (r *rotator) open() error {
	f, err := os.OpenFile(r.path(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open the log file: %w", err)
	}
	now := time.Now()
	if err := os.Chtimes(r.path(), now, now); err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to set the modification time of log file %s: %w", r.path(), err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to open the log file: %w", err)
	}
	r.f, r.size, r.touched = f, fi.Size(), now
	if r.bw == nil {
		r.bw = bufio.NewWriterSize(f, bufSize)
	} else {
		r.bw.Reset(f)
	}
	if r.size == 0 {
		return r.put(r.header)
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, r.size-1); err != nil {
		r.abandon()
		return fmt.Errorf("failed to read the end of log file %s: %w", r.path(), err)
	}
	if last[0] != '\n' {
		return r.put([]byte{'\n'})
	}
	return nil
}

// put writes b into the buffer.
func (r *rotator) put(b []byte) error {
	n, err := r.bw.Write(b)
	r.size += int64(n)
	if err != nil {
		r.abandon()
		return fmt.Errorf("failed to write log file %s: %w", r.path(), err)
	}
	return nil
}

// writeLines writes newline-terminated lines, rotating the file before a
// line that would take it past maxBytes (unless the file holds no line
// yet). After a failure the file is reopened at the next write.
func (r *rotator) writeLines(p []byte) error {
	if r.f == nil {
		if err := r.open(); err != nil {
			return err
		}
	}
	for len(p) > 0 {
		n := len(p)
		if i := slices.Index(p, '\n'); i >= 0 {
			n = i + 1
		}
		if r.size > int64(len(r.header)) && r.size+int64(n) > r.maxBytes {
			if err := r.rotate(); err != nil {
				return err
			}
		}
		if err := r.put(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// rotate renames the current file after the time and starts a new one.
func (r *rotator) rotate() error {
	if err := r.close(); err != nil {
		return err
	}
	name, err := r.rotatedName(time.Now())
	if err != nil {
		return err
	}
	if err := os.Rename(r.path(), name); err != nil {
		return fmt.Errorf("failed to rotate log file %s: %w", r.path(), err)
	}
	if err := r.prune(time.Now()); err != nil {
		return err
	}
	return r.open()
}

// keepAlive runs at every tick of the writer: once every touchInterval it
// sets the current file's modification time, so that another replica
// never takes it for a gone process's file. Should the file have been
// removed all the same, or replaced (another replica pruned it in the
// instant this process reopened it after StaleAfter down), the rows
// written since the last check are lost, and the file is started anew.
func (r *rotator) keepAlive(now time.Time) error {
	if r.f == nil || now.Sub(r.touched) < touchInterval {
		return nil
	}
	r.touched = now
	mine, err := r.f.Stat()
	if err != nil {
		r.abandon()
		return fmt.Errorf("failed to check log file %s: %w", r.path(), err)
	}
	named, err := os.Stat(r.path())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to check log file %s: %w", r.path(), err)
	}
	if err != nil || !os.SameFile(mine, named) {
		if err := r.close(); err != nil {
			return err
		}
		if err := r.open(); err != nil {
			return err
		}
		return fmt.Errorf("log file %s was removed while written to; started it anew", r.path())
	}
	if err := os.Chtimes(r.path(), now, now); err != nil {
		return fmt.Errorf("failed to set the modification time of log file %s: %w", r.path(), err)
	}
	return nil
}

// rotatedName returns the name of a rotated file at t, a nanosecond later
// for each that exists already.
func (r *rotator) rotatedName(t time.Time) (string, error) {
	for range 1000 {
		name := filepath.Join(r.dir, r.base()+"."+t.UTC().Format(stampLayout)+ext)
		_, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			if _, err = os.Lstat(name + ".gz"); errors.Is(err, fs.ErrNotExist) {
				return name, nil
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("failed to name a rotated log file: %w", err)
		}
		t = t.Add(time.Nanosecond)
	}
	return "", fmt.Errorf("failed to name a rotated log file: 1000 names taken after %s", t.Format(stampLayout))
}

// prune removes the old files of this log beyond the newest maxFiles:
// the log's rotated files of every host, dated by the time in their
// names, and the current files of other hosts last modified StaleAfter
// before now, dated by their modification time; never this process's
// current file. Every replica of a frontend prunes the directory they
// share, at once as well: a file another one removed, or rotated, first
// is no error.
func (r *rotator) prune(now time.Time) error {
	old, err := r.oldFiles(now)
	if err != nil {
		return err
	}
	return removeFiles(old)
}

// oldFiles returns the files prune removes.
func (r *rotator) oldFiles(now time.Time) ([]string, error) {
	files, err := List(r.dir)
	if err != nil {
		return nil, err
	}
	type dated struct {
		path string
		at   time.Time
	}
	var rotated []dated
	var errs []error
	for _, f := range files {
		switch {
		case f.Log != r.log:
		case !f.Rotated.IsZero():
			rotated = append(rotated, dated{f.Path, f.Rotated})
		case f.Host != r.host:
			fi, err := os.Stat(f.Path)
			switch {
			case errors.Is(err, fs.ErrNotExist): // rotated or removed since List
			case err != nil:
				errs = append(errs, err)
			case now.Sub(fi.ModTime()) >= StaleAfter:
				rotated = append(rotated, dated{f.Path, fi.ModTime()})
			}
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("failed to list old log files: %w", errors.Join(errs...))
	}
	slices.SortFunc(rotated, func(a, b dated) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	var old []string
	for _, d := range rotated[:max(0, len(rotated)-r.maxFiles)] {
		old = append(old, d.path)
	}
	return old, nil
}

// removeFiles removes files; one already removed is no error.
func removeFiles(paths []string) error {
	var errs []error
	for _, p := range paths {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to remove old log files: %w", errors.Join(errs...))
	}
	return nil
}

// flush writes the buffered lines to the file.
func (r *rotator) flush() error {
	if r.f == nil || r.bw.Buffered() == 0 {
		return nil
	}
	if err := r.bw.Flush(); err != nil {
		r.abandon()
		return fmt.Errorf("failed to write log file %s: %w", r.path(), err)
	}
	return nil
}

// close flushes, syncs and closes the current file.
func (r *rotator) close() error {
	if r.f == nil {
		return nil
	}
	if err := r.flush(); err != nil {
		return err
	}
	err := r.f.Sync()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f = nil
	if err != nil {
		return fmt.Errorf("failed to close log file %s: %w", r.path(), err)
	}
	return nil
}

// abandon closes the file after a failure, dropping what is buffered; the
// next write reopens it.
func (r *rotator) abandon() {
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	r.bw.Reset(io.Discard)
}

// File is a log file found in a directory.
type File struct {
	Path string
	Log  Log
	// Host is the host name of the process that wrote it, as its name
	// holds it.
	Host string
	// Rotated is when the file was rotated; zero for a current file.
	Rotated time.Time
	// Gzip is set for a file whose name ends in ".gz".
	Gzip bool
}

// List returns the log files of dir, current and rotated, of every host:
// sorted by log, then host, then rotated files oldest first, then the
// current file. Other files are left out.
func List(dir string) ([]File, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("failed to list the log directory: %w", err)
	}
	var out []File
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		if f, ok := parseName(e.Name()); ok {
			f.Path = filepath.Join(dir, e.Name())
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b File) int {
		if c := strings.Compare(string(a.Log), string(b.Log)); c != 0 {
			return c
		}
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		switch {
		case a.Rotated.IsZero() != b.Rotated.IsZero():
			if a.Rotated.IsZero() {
				return 1
			}
			return -1
		case !a.Rotated.Equal(b.Rotated):
			return a.Rotated.Compare(b.Rotated)
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// parseName reads a log file's name: <log>.<host>[.<stamp>].jsonl[.gz].
func parseName(name string) (File, bool) {
	var f File
	name, f.Gzip = strings.CutSuffix(name, ".gz")
	name, ok := strings.CutSuffix(name, ext)
	if !ok {
		return File{}, false
	}
	lg, host, ok := strings.Cut(name, ".")
	f.Log = Log(lg)
	if !ok || f.Log.Kind() == "" || host == "" {
		return File{}, false
	}
	if i := len(host) - len(stampLayout) - 1; i > 0 && host[i] == '.' {
		if t, err := time.Parse(stampLayout, host[i+1:]); err == nil {
			f.Rotated, host = t, host[:i]
		}
	}
	f.Host = host
	return f, true
}

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
)

// rotator is one log's current file: it rotates the file by size, keeps
// maxFiles rotated ones and starts each file with header. It is used by
// the writer goroutine alone.
type rotator struct {
	dir, base string // files are dir/base.jsonl and dir/base.<stamp>.jsonl
	header    []byte
	maxBytes  int64
	maxFiles  int

	f    *os.File // nil when closed, or after a failure until the next write
	bw   *bufio.Writer
	size int64 // of the file, the buffered bytes included
}

func (r *rotator) path() string { return filepath.Join(r.dir, r.base+ext) }

// open opens the current file for appending, writing the header into a
// new one. A file whose last line was cut short (a crash) gets a newline,
// so that the cut line stays a bad line of its own.
func (r *rotator) open() error {
	f, err := os.OpenFile(r.path(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open the log file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("failed to open the log file: %w", err)
	}
	r.f, r.size = f, fi.Size()
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
	if err := r.prune(); err != nil {
		return err
	}
	return r.open()
}

// rotatedName returns the name of a rotated file at t, a nanosecond later
// for each that exists already.
func (r *rotator) rotatedName(t time.Time) (string, error) {
	for range 1000 {
		name := filepath.Join(r.dir, r.base+"."+t.UTC().Format(stampLayout)+ext)
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

// prune removes the oldest rotated files of this log and host beyond
// maxFiles.
func (r *rotator) prune() error {
	files, err := List(r.dir)
	if err != nil {
		return err
	}
	var rotated []string
	for _, f := range files {
		if !f.Rotated.IsZero() && string(f.Log)+"."+f.Host == r.base {
			rotated = append(rotated, f.Path) // List sorts them oldest first
		}
	}
	var errs []error
	for _, p := range rotated[:max(0, len(rotated)-r.maxFiles)] {
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

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

package model

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/fetch"
)

// DefaultMaxBytes is the default bound on an archive's compressed size and on
// the total size of the files unpacked from it.
const DefaultMaxBytes = 1 << 30

// Loader loads artifacts from URIs. The zero value is ready to use.
type Loader struct {
	// Client fetches http and https URIs. Default: http.DefaultClient. The
	// request is bound to the context passed to Load.
	Client *http.Client
	// MaxBytes bounds a downloaded or local archive, compressed and unpacked.
	// Default: DefaultMaxBytes (1 GiB).
	MaxBytes int64
}

// Load loads an artifact with a zero Loader; see Loader.Load.
func Load(ctx context.Context, uri string) (*Artifact, error) {
	var l Loader
	return l.Load(ctx, uri)
}

// Load loads and validates the artifact at uri, which is one of
//
//   - a plain path or file:// URL of a directory holding manifest.json and
//     model.safetensors;
//   - a plain path or file:// URL of a .tar.gz (or .tgz) archive holding those
//     two files at its top level;
//   - an http:// or https:// URL of such an archive.
//
// Errors from a malformed artifact wrap ErrInvalid.
func (l *Loader) Load(ctx context.Context, uri string) (*Artifact, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("failed to load model from %q: %w", fetch.Redact(uri), err)
	}
	a, err := l.load(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("failed to load model from %q: %w", fetch.Redact(uri), err)
	}
	return a, nil
}

func (l *Loader) maxBytes() int64 {
	if l.MaxBytes > 0 {
		return l.MaxBytes
	}
	return DefaultMaxBytes
}

func (l *Loader) load(ctx context.Context, uri string) (*Artifact, error) {
	loc, err := fetch.Parse(uri)
	if err != nil {
		return nil, err
	}
	if loc.URL == nil {
		fi, err := os.Stat(loc.Path)
		if err != nil {
			return nil, fmt.Errorf("failed to stat artifact: %w", err)
		}
		if fi.IsDir() {
			return LoadDir(loc.Path)
		}
		if !isArchive(loc.Path) {
			return nil, fmt.Errorf("%s is neither a directory nor a .tar.gz archive", loc.Path)
		}
	}
	r, err := loc.Open(ctx, fetch.Options{Client: l.Client, MaxBytes: l.maxBytes()})
	if err != nil {
		return nil, fmt.Errorf("failed to open archive: %w", err)
	}
	defer r.Close()
	return ReadArchive(r, l.maxBytes())
}

func isArchive(name string) bool {
	return strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz")
}

// ReadArchive reads a .tar.gz holding manifest.json and model.safetensors at
// its top level (a leading "./" is allowed; directories and other files are
// ignored) and returns the validated artifact. maxBytes bounds the total
// unpacked size; zero means DefaultMaxBytes.
func ReadArchive(r io.Reader, maxBytes int64) (*Artifact, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, invalidf("archive is not gzip-compressed: %v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	var seen []string
	budget := maxBytes
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, readErr("archive", err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if len(seen) < 8 {
			seen = append(seen, h.Name)
		}
		if name != ManifestFile && name != WeightsFile {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return nil, invalidf("archive entry %s is not a regular file", h.Name)
		}
		if _, dup := files[name]; dup {
			return nil, invalidf("archive holds %s twice", name)
		}
		if h.Size > budget {
			return nil, fmt.Errorf("archive entry %s is %d bytes; unpacked, the archive exceeds the size limit of %d bytes", h.Name, h.Size, maxBytes)
		}
		b, err := io.ReadAll(io.LimitReader(tr, budget+1))
		if err != nil {
			return nil, readErr("archive entry "+h.Name, err)
		}
		budget -= int64(len(b))
		files[name] = b
	}
	for _, name := range []string{ManifestFile, WeightsFile} {
		if _, ok := files[name]; !ok {
			return nil, invalidf("archive has no %s at its top level (entries: %s)", name, strings.Join(seen, ", "))
		}
	}
	return Parse(files[ManifestFile], files[WeightsFile])
}

// readErr classifies an error from reading an archive: a truncated or
// corrupt stream is an invalid artifact; anything else (network, limit) is
// returned as is.
func readErr(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, tar.ErrHeader) {
		return fmt.Errorf("%w: failed to read %s (truncated or corrupt): %v", ErrInvalid, what, err)
	}
	return fmt.Errorf("failed to read %s: %w", what, err)
}

// WriteArchive validates the manifest and tensors as Save does and writes the
// artifact to w as a .tar.gz holding manifest.json and model.safetensors.
func WriteArchive(w io.Writer, m *Manifest, tensors map[string]Tensor) error {
	mb, wb, err := encode(m, tensors)
	if err != nil {
		return err
	}
	zw := gzip.NewWriter(w)
	tw := tar.NewWriter(zw)
	now := time.Now().UTC().Truncate(time.Second)
	for _, f := range []struct {
		name string
		b    []byte
	}{{ManifestFile, mb}, {WeightsFile, wb}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return fmt.Errorf("failed to write archive header of %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.b); err != nil {
			return fmt.Errorf("failed to write %s to archive: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("failed to finish archive: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("failed to finish archive compression: %w", err)
	}
	return nil
}

package model

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"github.com/recpipeline/recpipeline/runtime/fetch"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"time"
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
		return nil, fmt.Errorf("failed to load model from %q: %w", redact(uri), err)
	}
	a, err := l.load(ctx, uri)
	if err != nil {
		return nil, fmt.Errorf("failed to load model from %q: %w", redact(uri), err)
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
	if !strings.Contains(uri, "://") {
		return l.loadPath(uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("failed to parse URI: %w", err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("file URI names host %q; only local files are supported", u.Host)
		}
		return l.loadPath(u.Path)
	case "http", "https":
		return l.loadHTTP(ctx, u)
	}
	return nil, fmt.Errorf("unsupported scheme %q (want a path, file://, http:// or https://)", u.Scheme)
}

func isArchive(name string) bool {
	return strings.HasSuffix(name, ".tar.gz") || strings.HasSuffix(name, ".tgz")
}

func (l *Loader) loadPath(p string) (*Artifact, error) {
	if p == "" {
		return nil, errors.New("empty path")
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("failed to stat artifact: %w", err)
	}
	if fi.IsDir() {
		return LoadDir(p)
	}
	if !isArchive(p) {
		return nil, fmt.Errorf("%s is neither a directory nor a .tar.gz archive", p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("failed to open archive: %w", err)
	}
	defer f.Close()
	return ReadArchive(f, l.maxBytes())
}

func (l *Loader) loadHTTP(ctx context.Context, u *url.URL) (*Artifact, error) {
	body, err := fetch.Get(ctx, l.Client, u, l.maxBytes())
	if err != nil {
		return nil, fmt.Errorf("failed to fetch archive: %w", err)
	}
	defer body.Close()
	return ReadArchive(body, l.maxBytes())
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

// redact hides a password in a URI for error messages.
func redact(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.User != nil {
		return u.Redacted()
	}
	return uri
}

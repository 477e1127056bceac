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
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// nonrootID is the uid and gid the containers run as: the nonroot user
	// of gcr.io/distroless/static:nonroot, which the Dockerfile builds on.
	nonrootID = 65532
	// sourceURL is the org.opencontainers.image.source label of every image.
	sourceURL = "https://github.com/recpipeline/recpipeline"
	// pathEnv is the PATH of every image.
	pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	// caCertsPath is where the CA bundle lives in the image, as in distroless.
	caCertsPath = "etc/ssl/certs/ca-certificates.crt"
)

// binary is one Go command of an image.
type binary struct {
	// Package is the import path, relative to the module root, that go
	// build compiles, e.g. "./runtime/cmd/recserve".
	Package string
	// Path is the binary's absolute path in the image, e.g. "/recserve".
	Path string
}

// imageSpec describes one image that build writes and push uploads.
type imageSpec struct {
	// Name is the image's repository below the registry (ghcr.io/recpipeline
	// by default) and the base name of its tarball (<Name>.tar).
	Name string
	// Description is the org.opencontainers.image.description label.
	Description string
	// Binaries are the commands the single layer holds.
	Binaries []binary
	// Entrypoint is the image's entrypoint; none when empty.
	Entrypoint []string
	// Optional images are built only with build -tools.
	Optional bool
}

// specs are the project's images.
var specs = []imageSpec{
	{
		Name:        "manager",
		Description: "The RecPipeline operator's manager.",
		Binaries:    []binary{{Package: ".", Path: "/manager"}},
		Entrypoint:  []string{"/manager"},
	},
	{
		Name:        "recserve",
		Description: "The RecPipeline serving runtime: one stage of a recommendation funnel.",
		Binaries:    []binary{{Package: "./runtime/cmd/recserve", Path: "/recserve"}},
		Entrypoint:  []string{"/recserve"},
	},
	{
		Name:        "recpipeline-tools",
		Description: "The RecPipeline offline commands: rectrain, recgen and recbench.",
		Binaries: []binary{
			{Package: "./runtime/cmd/rectrain", Path: "/usr/local/bin/rectrain"},
			{Package: "./runtime/cmd/recgen", Path: "/usr/local/bin/recgen"},
			{Package: "./runtime/cmd/recbench", Path: "/usr/local/bin/recbench"},
		},
		Optional: true,
	},
}

// metadata is what every image of one build shares.
type metadata struct {
	// Version is the image tag and the org.opencontainers.image.version label.
	Version string
	// Revision is the git commit; the revision label is left out when empty.
	Revision string
	// Created is the image's creation time and the modification time of
	// every file in its layer, so that equal inputs give equal digests.
	Created time.Time
	// Platform is the image's OS, architecture and variant.
	Platform v1.Platform
}

// labels returns the OCI annotations of an image of spec.
func (m metadata) labels(spec imageSpec) map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       spec.Name,
		"org.opencontainers.image.description": spec.Description,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.url":         sourceURL,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
	if m.Revision != "" {
		l["org.opencontainers.image.revision"] = m.Revision
	}
	return l
}

// buildImage assembles the image of spec from the compiled binaries (keyed
// by their path in the image) and the CA bundle (left out when nil). The
// result has one layer and Docker schema 2 media types, the ones an image
// keeps through the tarball that build writes, so the digest it reports is
// the digest push uploads.
func buildImage(spec imageSpec, m metadata, binaries map[string][]byte, caCerts []byte) (v1.Image, error) {
	files, err := layerFiles(spec, binaries, caCerts)
	if err != nil {
		return nil, err
	}
	layer, err := newLayer(files, m.Created)
	if err != nil {
		return nil, fmt.Errorf("failed to build the layer of %s: %w", spec.Name, err)
	}
	created := v1.Time{Time: m.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: m.Platform.Architecture,
		OS:           m.Platform.OS,
		Variant:      m.Platform.Variant,
		Created:      created,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", nonrootID, nonrootID),
			Entrypoint: spec.Entrypoint,
			WorkingDir: "/",
			Env:        []string{pathEnv},
			Labels:     m.labels(spec),
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to set the config of %s: %w", spec.Name, err)
	}
	img, err = mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: "go run ./hack/images build",
			Comment:   "static binaries, passwd and group of the nonroot user, /tmp",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to add the layer of %s: %w", spec.Name, err)
	}
	return img, nil
}

// file is one entry of the layer.
type file struct {
	Name     string // absolute path in the image
	Dir      bool
	Mode     int64 // permission bits, with the sticky bit for /tmp
	UID, GID int
	Data     []byte
}

// layerFiles lists the entries of spec's layer: a passwd and group with the
// nonroot user, its home, a world-writable /tmp, the CA bundle and the
// binaries, all mode 0755 and owned by the nonroot user.
func layerFiles(spec imageSpec, binaries map[string][]byte, caCerts []byte) ([]file, error) {
	files := []file{
		{Name: "/etc/passwd", Mode: 0o644, Data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{Name: "/etc/group", Mode: 0o644, Data: []byte(
			"root:x:0:\n" +
				"nobody:x:65534:\n" +
				"nonroot:x:65532:\n")},
		{Name: "/home/nonroot", Dir: true, Mode: 0o700, UID: nonrootID, GID: nonrootID},
		{Name: "/tmp", Dir: true, Mode: 0o1777},
	}
	if caCerts != nil {
		files = append(files, file{Name: "/" + caCertsPath, Mode: 0o644, Data: caCerts})
	}
	for _, b := range spec.Binaries {
		data, ok := binaries[b.Path]
		if !ok {
			return nil, fmt.Errorf("failed to build %s: no binary for %s", spec.Name, b.Path)
		}
		files = append(files, file{Name: b.Path, Mode: 0o755, UID: nonrootID, GID: nonrootID, Data: data})
	}
	return withParents(files), nil
}

// withParents adds the missing parent directories of files (root-owned, mode
// 0755) and sorts the entries so that a directory precedes its contents.
func withParents(files []file) []file {
	seen := map[string]bool{}
	for _, f := range files {
		seen[f.Name] = true
	}
	for _, f := range files {
		for dir := path.Dir(f.Name); dir != "/" && !seen[dir]; dir = path.Dir(dir) {
			seen[dir] = true
			files = append(files, file{Name: dir, Dir: true, Mode: 0o755})
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files
}

// newLayer writes files into a gzip-compressed tar whose every entry has
// modification time mtime and no other timestamps, so equal files give an
// equal digest.
func newLayer(files []file, mtime time.Time) (v1.Layer, error) {
	var compressed bytes.Buffer
	zw, err := gzip.NewWriterLevel(&compressed, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(f.Name, "/"),
			Mode:    f.Mode,
			Uid:     f.UID,
			Gid:     f.GID,
			Uname:   userName(f.UID),
			Gname:   userName(f.GID),
			ModTime: mtime.UTC().Truncate(time.Second),
			Format:  tar.FormatUSTAR,
		}
		if f.Dir {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("failed to write the header of %s: %w", f.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("failed to write %s: %w", f.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	blob := compressed.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	})
}

// userName names the ids of passwd and group.
func userName(id int) string {
	switch id {
	case 0:
		return "root"
	case nonrootID:
		return "nonroot"
	}
	return ""
}

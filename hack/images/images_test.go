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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// created is the SOURCE_DATE_EPOCH of the tests' builds.
var created = time.Unix(1767225600, 0).UTC() // 2026-01-01T00:00:00Z

// fakeModule writes a module root whose main packages stand in for the
// project's commands; the recserve stand-in declares var version.
func fakeModule(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, s := range specs {
		for _, b := range s.Binaries {
			src := "package main\n\nfunc main() {}\n"
			if b.Package == "./runtime/cmd/recserve" {
				src = "package main\n\nvar version = \"unknown\"\n\nfunc main() { println(version) }\n"
			}
			dir := filepath.Join(root, b.Package)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// fakeCompiler records go build's options and writes a tiny stand-in
// binary instead of compiling.
type fakeCompiler struct {
	mu    sync.Mutex
	calls []compileOptions
}

func (c *fakeCompiler) compile(_ context.Context, o compileOptions) error {
	c.mu.Lock()
	c.calls = append(c.calls, o)
	c.mu.Unlock()
	return os.WriteFile(o.Out, []byte("#!stand-in for "+o.Package+"\n"), 0o600)
}

// runBuild runs the build subcommand on a fake module with a fake compiler
// and returns the output directory.
func runBuild(t *testing.T, c *fakeCompiler, extra ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "images")
	runBuildIn(t, out, c, extra...)
	return out
}

// runBuildIn is runBuild writing to out.
func runBuildIn(t *testing.T, out string, c *fakeCompiler, extra ...string) {
	t.Helper()
	root := fakeModule(t)
	certs := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(certs, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	b := &builder{
		compile: c.compile,
		git: func(_ context.Context, _ string, args ...string) (string, error) {
			if args[0] == "rev-parse" {
				return "0123456789abcdef0123456789abcdef01234567", nil
			}
			return "", errors.New("unexpected git call")
		},
		getenv: func(k string) string {
			if k == "SOURCE_DATE_EPOCH" {
				return fmt.Sprint(created.Unix())
			}
			return ""
		},
		stdout: io.Discard,
	}
	args := append([]string{"-out", out, "-C", root, "-ca-certs", certs}, extra...)
	if err := b.run(context.Background(), args, io.Discard); err != nil {
		t.Fatalf("build %q: %v", args, err)
	}
}

// loadImage reads the tarball of the named image, found by its tag.
func loadImage(t *testing.T, dir, imageName, version string) v1.Image {
	t.Helper()
	tag, err := name.NewTag("ghcr.io/recpipeline/" + imageName + ":" + version)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, imageName+".tar"), &tag)
	if err != nil {
		t.Fatalf("image %s is not in its tarball under its tag: %v", tag, err)
	}
	return img
}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// layerEntry is what the tests check of one tar entry.
type layerEntry struct {
	hdr  *tar.Header
	data []byte
}

// layerEntries reads the single layer of img.
func layerEntries(t *testing.T, img v1.Image) map[string]layerEntry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("image has %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]layerEntry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries["/"+strings.TrimSuffix(hdr.Name, "/")] = layerEntry{hdr, data}
	}
	return entries
}

func TestBuildConfig(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1.2.3")
	for _, tc := range []struct {
		image      string
		entrypoint []string
	}{
		{image: "manager", entrypoint: []string{"/manager"}},
		{image: "recserve", entrypoint: []string{"/recserve"}},
	} {
		t.Run(tc.image, func(t *testing.T) {
			cfg, err := loadImage(t, out, tc.image, "v1.2.3").ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			c := cfg.Config
			if !reflect.DeepEqual(c.Entrypoint, tc.entrypoint) {
				t.Errorf("entrypoint = %q, want %q", c.Entrypoint, tc.entrypoint)
			}
			if c.User != "65532:65532" {
				t.Errorf("user = %q, want 65532:65532", c.User)
			}
			if c.WorkingDir != "/" {
				t.Errorf("working dir = %q, want /", c.WorkingDir)
			}
			if len(c.Env) != 1 || !strings.HasPrefix(c.Env[0], "PATH=") {
				t.Errorf("env = %q, want only PATH", c.Env)
			}
			if cfg.OS != "linux" || cfg.Architecture != "amd64" {
				t.Errorf("platform = %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
			}
			if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 {
				t.Errorf("rootfs = %+v, want type layers with one diff id", cfg.RootFS)
			}
			if !cfg.Created.Time.Equal(created) {
				t.Errorf("created = %v, want SOURCE_DATE_EPOCH %v", cfg.Created.Time, created)
			}
			wantLabels := map[string]string{
				"org.opencontainers.image.title":    tc.image,
				"org.opencontainers.image.version":  "v1.2.3",
				"org.opencontainers.image.source":   "https://github.com/recpipeline/recpipeline",
				"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567",
				"org.opencontainers.image.created":  "2026-01-01T00:00:00Z",
			}
			for k, want := range wantLabels {
				if got := c.Labels[k]; got != want {
					t.Errorf("label %s = %q, want %q", k, got, want)
				}
			}
		})
	}
	if _, err := os.Stat(filepath.Join(out, "recpipeline-tools.tar")); !os.IsNotExist(err) {
		t.Errorf("recpipeline-tools.tar was written without -tools (stat: %v)", err)
	}
}

func TestBuildLayer(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1")
	entries := layerEntries(t, loadImage(t, out, "recserve", "v1"))
	for _, tc := range []struct {
		path     string
		typeflag byte
		mode     int64
		uid, gid int
		contains string
	}{
		{path: "/recserve", typeflag: tar.TypeReg, mode: 0o755, uid: 65532, gid: 65532, contains: "stand-in for ./runtime/cmd/recserve"},
		{path: "/etc/passwd", typeflag: tar.TypeReg, mode: 0o644, contains: "nonroot:x:65532:65532:"},
		{path: "/etc/group", typeflag: tar.TypeReg, mode: 0o644, contains: "nonroot:x:65532:"},
		{path: "/etc/ssl/certs/ca-certificates.crt", typeflag: tar.TypeReg, mode: 0o644, contains: "BEGIN CERTIFICATE"},
		{path: "/tmp", typeflag: tar.TypeDir, mode: 0o1777},
		{path: "/home/nonroot", typeflag: tar.TypeDir, mode: 0o700, uid: 65532, gid: 65532},
		{path: "/etc", typeflag: tar.TypeDir, mode: 0o755},
	} {
		e, ok := entries[tc.path]
		if !ok {
			t.Errorf("layer has no %s", tc.path)
			continue
		}
		if e.hdr.Typeflag != tc.typeflag || e.hdr.Mode != tc.mode || e.hdr.Uid != tc.uid || e.hdr.Gid != tc.gid {
			t.Errorf("%s: type %c mode %#o owner %d:%d, want type %c mode %#o owner %d:%d",
				tc.path, e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid, tc.typeflag, tc.mode, tc.uid, tc.gid)
		}
		if !bytes.Contains(e.data, []byte(tc.contains)) {
			t.Errorf("%s = %q, want it to contain %q", tc.path, e.data, tc.contains)
		}
	}
	for p, e := range entries {
		if !e.hdr.ModTime.Equal(created) {
			t.Errorf("%s: mtime %v, want SOURCE_DATE_EPOCH %v", p, e.hdr.ModTime, created)
		}
	}
	if _, ok := entries["/manager"]; ok {
		t.Error("the recserve image holds /manager")
	}
}

func TestBuildCompilesStatically(t *testing.T) {
	c := &fakeCompiler{}
	runBuild(t, c, "-version", "v2", "-platform", "linux/arm/v7", "-tools")
	got := map[string]compileOptions{}
	for _, o := range c.calls {
		got[o.Package] = o
	}
	for _, tc := range []struct {
		pkg     string
		ldflags string
	}{
		{pkg: ".", ldflags: "-s -w"},
		// Only the stand-in recserve declares var version.
		{pkg: "./runtime/cmd/recserve", ldflags: "-s -w -X main.version=v2"},
		{pkg: "./runtime/cmd/rectrain", ldflags: "-s -w"},
		{pkg: "./runtime/cmd/recgen", ldflags: "-s -w"},
		{pkg: "./runtime/cmd/recbench", ldflags: "-s -w"},
	} {
		o, ok := got[tc.pkg]
		if !ok {
			t.Errorf("%s was not compiled", tc.pkg)
			continue
		}
		if o.LDFlags != tc.ldflags {
			t.Errorf("%s: ldflags %q, want %q", tc.pkg, o.LDFlags, tc.ldflags)
		}
		wantEnv := []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm", "GOARM=7"}
		if !reflect.DeepEqual(o.Env, wantEnv) {
			t.Errorf("%s: env %q, want %q", tc.pkg, o.Env, wantEnv)
		}
	}
}

func TestBuildTools(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1", "-tools")
	img := loadImage(t, out, "recpipeline-tools", "v1")
	entries := layerEntries(t, img)
	for _, p := range []string{"/usr/local/bin/rectrain", "/usr/local/bin/recgen", "/usr/local/bin/recbench"} {
		if e, ok := entries[p]; !ok || e.hdr.Mode != 0o755 {
			t.Errorf("layer lacks an executable %s", p)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || len(cfg.Config.Entrypoint) != 0 {
		t.Errorf("user %q entrypoint %q, want 65532:65532 and none", cfg.Config.User, cfg.Config.Entrypoint)
	}
}

// TestBuildDropsStaleTools checks that a build without -tools removes the
// tools tarball of an earlier build, which push would otherwise upload.
func TestBuildDropsStaleTools(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1", "-tools")
	if _, err := os.Stat(filepath.Join(out, "recpipeline-tools.tar")); err != nil {
		t.Fatalf("build -tools wrote no recpipeline-tools.tar: %v", err)
	}
	runBuildIn(t, out, &fakeCompiler{}, "-version", "v2")
	if _, err := os.Stat(filepath.Join(out, "recpipeline-tools.tar")); !os.IsNotExist(err) {
		t.Errorf("recpipeline-tools.tar survived a build without -tools (stat: %v)", err)
	}
}

func TestBuildReproducible(t *testing.T) {
	first := runBuild(t, &fakeCompiler{}, "-version", "v1")
	second := runBuild(t, &fakeCompiler{}, "-version", "v1")
	other := runBuild(t, &fakeCompiler{}, "-version", "v2")
	for _, image := range []string{"manager", "recserve"} {
		a := digestOf(t, loadImage(t, first, image, "v1"))
		b := digestOf(t, loadImage(t, second, image, "v1"))
		if a != b {
			t.Errorf("%s: two builds of the same inputs differ: %s and %s", image, a, b)
		}
		if c := digestOf(t, loadImage(t, other, image, "v2")); c == a {
			t.Errorf("%s: builds of versions v1 and v2 share digest %s", image, a)
		}
		fa, err := os.ReadFile(filepath.Join(first, image+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		fb, err := os.ReadFile(filepath.Join(second, image+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(fa, fb) {
			t.Errorf("%s: two builds of the same inputs wrote different tarballs", image)
		}
	}
}

func TestBuildRejectsBadFlags(t *testing.T) {
	for desc, args := range map[string][]string{
		"no -out":            {"-version", "v1"},
		"tag with a slash":   {"-out", t.TempDir(), "-version", "a/b"},
		"platform sans arch": {"-out", t.TempDir(), "-platform", "linux"},
		"unknown variant":    {"-out", t.TempDir(), "-platform", "linux/arm/v9"},
		"stray argument":     {"-out", t.TempDir(), "extra"},
	} {
		t.Run(desc, func(t *testing.T) {
			b := &builder{compile: (&fakeCompiler{}).compile, stdout: io.Discard}
			if err := b.run(context.Background(), append(args, "-C", t.TempDir()), io.Discard); err == nil {
				t.Errorf("build %q succeeded, want an error", args)
			}
		})
	}
}

func TestProvenance(t *testing.T) {
	gitOK := func(_ context.Context, _ string, args ...string) (string, error) {
		if args[0] == "rev-parse" {
			return "abc", nil
		}
		return "1700000000", nil
	}
	noGit := func(context.Context, string, ...string) (string, error) {
		return "", errors.New("not a git repository")
	}
	for desc, tc := range map[string]struct {
		git          func(context.Context, string, ...string) (string, error)
		epoch        string
		wantRevision string
		wantCreated  time.Time
	}{
		"SOURCE_DATE_EPOCH wins over the commit time": {git: gitOK, epoch: "1600000000", wantRevision: "abc", wantCreated: time.Unix(1600000000, 0)},
		"commit time without SOURCE_DATE_EPOCH":       {git: gitOK, wantRevision: "abc", wantCreated: time.Unix(1700000000, 0)},
		"Unix epoch outside git":                      {git: noGit, wantCreated: time.Unix(0, 0)},
	} {
		t.Run(desc, func(t *testing.T) {
			b := &builder{git: tc.git, getenv: func(string) string { return tc.epoch }}
			rev, at, err := b.provenance(context.Background(), ".")
			if err != nil {
				t.Fatal(err)
			}
			if rev != tc.wantRevision || !at.Equal(tc.wantCreated) {
				t.Errorf("provenance = %q, %v; want %q, %v", rev, at, tc.wantRevision, tc.wantCreated)
			}
		})
	}
}

// TestTarballManifest checks what `ctr images import` and `docker load`
// read: the tarball's manifest.json names the image by its tag.
func TestTarballManifest(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1")
	f, err := os.Open(filepath.Join(out, "manager.tar"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatal("manager.tar has no manifest.json")
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name != "manifest.json" {
			continue
		}
		var m []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			t.Fatal(err)
		}
		if len(m) != 1 || !reflect.DeepEqual(m[0].RepoTags, []string{"ghcr.io/recpipeline/manager:v1"}) {
			t.Errorf("manifest.json = %+v, want one image tagged ghcr.io/recpipeline/manager:v1", m)
		}
		return
	}
}

func TestPush(t *testing.T) {
	out := runBuild(t, &fakeCompiler{}, "-version", "v1")
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://") + "/team"
	// The default keychain reads an empty docker config: anonymous access.
	t.Setenv("DOCKER_CONFIG", t.TempDir())

	for desc, tc := range map[string]struct {
		args    []string
		wantTag string
	}{
		"tag from the version label": {wantTag: "v1"},
		"tag from -version":          {args: []string{"-version", "rc1"}, wantTag: "rc1"},
	} {
		t.Run(desc, func(t *testing.T) {
			p := &pusher{stdout: io.Discard}
			args := append([]string{"-in", out, "-registry", reg}, tc.args...)
			if err := p.run(context.Background(), args, io.Discard); err != nil {
				t.Fatalf("push: %v", err)
			}
			for _, image := range []string{"manager", "recserve"} {
				ref, err := name.NewTag(reg + "/" + image + ":" + tc.wantTag)
				if err != nil {
					t.Fatal(err)
				}
				pulled, err := remote.Image(ref, remote.WithContext(context.Background()))
				if err != nil {
					t.Fatalf("pull %s: %v", ref, err)
				}
				if got, want := digestOf(t, pulled), digestOf(t, loadImage(t, out, image, "v1")); got != want {
					t.Errorf("%s: pulled digest %s, built %s", ref, got, want)
				}
			}
		})
	}
}

func TestPushNeedsTarballs(t *testing.T) {
	p := &pusher{keychain: authn.NewMultiKeychain(), stdout: io.Discard}
	err := p.run(context.Background(), []string{"-in", t.TempDir(), "-registry", "127.0.0.1:1/x"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "run build first") {
		t.Errorf("push from an empty directory = %v, want an error that says to run build", err)
	}
}

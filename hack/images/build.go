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
	"context"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const (
	// defaultRepository is where the tarballs' tags point: the images are
	// published as ghcr.io/recpipeline/<name>.
	defaultRepository = "ghcr.io/recpipeline"
	// defaultCACerts is Debian's CA bundle, copied into every image so that
	// recserve can fetch catalogs and models over https.
	defaultCACerts = "/etc/ssl/certs/ca-certificates.crt"
)

// compileOptions says how to compile one binary.
type compileOptions struct {
	// Dir is the module root, where go build runs.
	Dir string
	// Package is the import path relative to Dir.
	Package string
	// Out is the path of the binary to write.
	Out string
	// Env is added to go build's environment (CGO_ENABLED, GOOS, GOARCH, …).
	Env []string
	// LDFlags is go build's -ldflags.
	LDFlags string
}

// builder runs the build subcommand.
type builder struct {
	// compile writes one static binary; goBuild outside the tests.
	compile func(ctx context.Context, o compileOptions) error
	// git runs git in the module root; nil runs the real git.
	git func(ctx context.Context, dir string, args ...string) (string, error)
	// getenv reads SOURCE_DATE_EPOCH; nil is os.Getenv.
	getenv func(string) string
	stdout io.Writer
}

func (b *builder) run(ctx context.Context, args []string, stderr io.Writer) error {
	flags := flag.NewFlagSet("build", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("out", "", "directory of the image tarballs (required)")
	version := flags.String("version", "dev", "image tag and version label; also main.version of commands that declare it")
	platform := flags.String("platform", "linux/amd64", "OS/ARCH[/VARIANT] of the images")
	tools := flags.Bool("tools", false, "also build recpipeline-tools (rectrain, recgen, recbench)")
	caCerts := flags.String("ca-certs", defaultCACerts, "CA bundle copied to /"+caCertsPath+"; empty leaves it out")
	dir := flags.String("C", "", "module root; the enclosing module of the working directory when empty")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	plat, err := parsePlatform(*platform)
	if err != nil {
		return err
	}
	if _, err := name.NewTag(defaultRepository+"/manager:"+*version, name.StrictValidation); err != nil {
		return fmt.Errorf("-version %q is not a valid image tag: %w", *version, err)
	}
	root := *dir
	if root == "" {
		if root, err = moduleRoot(ctx); err != nil {
			return err
		}
	}
	var certs []byte
	if *caCerts != "" {
		if certs, err = os.ReadFile(*caCerts); err != nil {
			return fmt.Errorf("failed to read the CA bundle (install ca-certificates or pass -ca-certs): %w", err)
		}
	}
	m := metadata{Version: *version, Platform: plat}
	if m.Revision, m.Created, err = b.provenance(ctx, root); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", *out, err)
	}
	work, err := os.MkdirTemp("", "recpipeline-images-")
	if err != nil {
		return fmt.Errorf("failed to create a work directory: %w", err)
	}
	defer os.RemoveAll(work)

	for _, spec := range specs {
		if spec.Optional && !*tools {
			// push uploads every tarball it finds: drop one an earlier
			// build left behind.
			if err := os.Remove(filepath.Join(*out, spec.Name+".tar")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			continue
		}
		binaries := map[string][]byte{}
		for _, bin := range spec.Binaries {
			data, err := b.binary(ctx, root, work, bin, m)
			if err != nil {
				return err
			}
			binaries[bin.Path] = data
		}
		img, err := buildImage(spec, m, binaries, certs)
		if err != nil {
			return err
		}
		tag, err := name.NewTag(fmt.Sprintf("%s/%s:%s", defaultRepository, spec.Name, m.Version), name.StrictValidation)
		if err != nil {
			return fmt.Errorf("failed to name %s: %w", spec.Name, err)
		}
		path := filepath.Join(*out, spec.Name+".tar")
		if err := writeTarball(path, tag, img); err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return fmt.Errorf("failed to compute the digest of %s: %w", spec.Name, err)
		}
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(b.stdout, "%s\t%s\t%s\t%.1f MiB\n", path, tag, digest, float64(info.Size())/(1<<20))
	}
	return nil
}

// binary compiles bin statically for m's platform and returns its bytes.
func (b *builder) binary(ctx context.Context, root, work string, bin binary, m metadata) ([]byte, error) {
	ldflags := "-s -w"
	has, err := hasVersionVar(filepath.Join(root, bin.Package))
	if err != nil {
		return nil, err
	}
	if has {
		ldflags += " -X main.version=" + m.Version
	}
	out := filepath.Join(work, filepath.Base(bin.Path))
	o := compileOptions{
		Dir:     root,
		Package: bin.Package,
		Out:     out,
		Env:     append([]string{"CGO_ENABLED=0"}, platformEnv(m.Platform)...),
		LDFlags: ldflags,
	}
	if err := b.compile(ctx, o); err != nil {
		return nil, fmt.Errorf("failed to compile %s: %w", bin.Package, err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("failed to read the binary of %s: %w", bin.Package, err)
	}
	return data, nil
}

// provenance returns the commit of root and the images' creation time:
// SOURCE_DATE_EPOCH when set, else the commit's time, else the Unix epoch.
// Outside a git checkout the revision is empty.
func (b *builder) provenance(ctx context.Context, root string) (string, time.Time, error) {
	getenv, git := b.getenv, b.git
	if getenv == nil {
		getenv = os.Getenv
	}
	if git == nil {
		git = runGit
	}
	revision, err := git(ctx, root, "rev-parse", "HEAD")
	if err != nil {
		revision = ""
	}
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds: %w", s, err)
		}
		return revision, time.Unix(sec, 0).UTC(), nil
	}
	if revision != "" {
		if s, err := git(ctx, root, "log", "-1", "--format=%ct", "HEAD"); err == nil {
			if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
				return revision, time.Unix(sec, 0).UTC(), nil
			}
		}
	}
	return revision, time.Unix(0, 0).UTC(), nil
}

// writeTarball writes img tagged tag to path, through a temporary file so an
// interrupted build leaves no truncated tarball behind.
func writeTarball(path string, tag name.Tag, img v1.Image) error {
	tmp := path + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}

// parsePlatform parses OS/ARCH[/VARIANT].
func parsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return v1.Platform{}, fmt.Errorf("-platform %q is not OS/ARCH[/VARIANT]", s)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
		if _, err := variantEnv(p); err != nil {
			return v1.Platform{}, err
		}
	}
	return p, nil
}

// platformEnv returns the go build environment that targets p.
func platformEnv(p v1.Platform) []string {
	env := []string{"GOOS=" + p.OS, "GOARCH=" + p.Architecture}
	if v, _ := variantEnv(p); v != "" {
		env = append(env, v)
	}
	return env
}

// variantEnv maps a platform variant to its go build variable.
func variantEnv(p v1.Platform) (string, error) {
	switch {
	case p.Variant == "":
		return "", nil
	case p.Architecture == "arm" && (p.Variant == "v5" || p.Variant == "v6" || p.Variant == "v7"):
		return "GOARM=" + strings.TrimPrefix(p.Variant, "v"), nil
	case p.Architecture == "arm64" && p.Variant == "v8":
		return "", nil
	case p.Architecture == "amd64" && (p.Variant == "v1" || p.Variant == "v2" || p.Variant == "v3" || p.Variant == "v4"):
		return "GOAMD64=" + p.Variant, nil
	}
	return "", fmt.Errorf("platform variant %s/%s is not supported", p.Architecture, p.Variant)
}

// hasVersionVar reports whether the main package in dir declares a
// package-level variable named version, which -X main.version can set.
func hasVersionVar(dir string) (bool, error) {
	pkg, err := build.Default.ImportDir(dir, 0)
	if err != nil {
		return false, fmt.Errorf("failed to read the package in %s: %w", dir, err)
	}
	fset := token.NewFileSet()
	for _, f := range pkg.GoFiles {
		file, err := parser.ParseFile(fset, filepath.Join(dir, f), nil, parser.SkipObjectResolution)
		if err != nil {
			return false, fmt.Errorf("failed to parse %s: %w", f, err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.VAR {
				continue
			}
			for _, spec := range gen.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if id.Name == "version" {
						return true, nil
					}
				}
			}
		}
	}
	return false, nil
}

// goBuild compiles one static, stripped, path-independent binary.
func goBuild(ctx context.Context, o compileOptions) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", o.LDFlags, "-o", o.Out, o.Package)
	cmd.Dir = o.Dir
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// moduleRoot returns the directory of the main module.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("failed to find the module root: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("failed to find the module root: not inside a Go module")
	}
	return filepath.Dir(gomod), nil
}

// runGit runs git in dir and returns its trimmed output.
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

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
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// pusher runs the push subcommand.
type pusher struct {
	// keychain finds the registry's credentials; nil is authn.DefaultKeychain.
	keychain authn.Keychain
	stdout   io.Writer
}

func (p *pusher) run(ctx context.Context, args []string, stderr io.Writer) error {
	fset := flag.NewFlagSet("push", flag.ContinueOnError)
	fset.SetOutput(stderr)
	in := fset.String("in", "", "directory of the image tarballs that build wrote (required)")
	registry := fset.String("registry", "", "registry and path the images go to, e.g. ghcr.io/me (required)")
	version := fset.String("version", "", "tag to push; the version each image was built with when empty")
	insecure := fset.Bool("insecure", false, "talk plain HTTP to the registry (loopback and private addresses always do)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fset.Args())
	}
	if *in == "" || *registry == "" {
		return errors.New("-in and -registry are required")
	}
	keychain := p.keychain
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	var opts []name.Option
	if *insecure {
		opts = append(opts, name.Insecure)
	}
	for _, spec := range specs {
		path := filepath.Join(*in, spec.Name+".tar")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && spec.Optional {
			continue
		}
		// The tarball holds exactly one image, so no tag is needed to find it.
		img, err := tarball.ImageFromPath(path, nil)
		if err != nil {
			return fmt.Errorf("failed to read %s (run build first): %w", path, err)
		}
		tagName := *version
		if tagName == "" {
			cfg, err := img.ConfigFile()
			if err != nil {
				return fmt.Errorf("failed to read the config of %s: %w", path, err)
			}
			if tagName = cfg.Config.Labels["org.opencontainers.image.version"]; tagName == "" {
				return fmt.Errorf("%s has no version label: pass -version", path)
			}
		}
		ref := fmt.Sprintf("%s/%s:%s", strings.TrimSuffix(*registry, "/"), spec.Name, tagName)
		tag, err := name.NewTag(ref, opts...)
		if err != nil {
			return fmt.Errorf("failed to parse %s: %w", ref, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return fmt.Errorf("failed to compute the digest of %s: %w", path, err)
		}
		fmt.Fprintf(p.stdout, "Pushing %s@%s\n", tag, digest)
		if err := remote.Write(tag, img, remote.WithAuthFromKeychain(keychain), remote.WithContext(ctx)); err != nil {
			return fmt.Errorf("failed to push %s: %w", tag, err)
		}
	}
	return nil
}

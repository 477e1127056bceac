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

// Command images builds the project's container images without Docker and
// pushes them to a registry.
//
//	go run ./hack/images build -out bin/images [-version V] [-platform linux/amd64] [-tools]
//	go run ./hack/images push -in bin/images -registry REG [-version V] [-insecure]
//
// build compiles static binaries of the manager and of recserve (and with
// -tools of rectrain, recgen and recbench) and writes one image tarball per
// image, <out>/manager.tar, <out>/recserve.tar (and
// <out>/recpipeline-tools.tar), tagged ghcr.io/recpipeline/<name>:V, which
// `ctr -n k8s.io images import` and `docker load` read. Each image has one
// layer: the binaries (mode 0755, owned by 65532:65532), /etc/passwd and
// /etc/group with the nonroot user 65532, its home, a world-writable /tmp
// and the build machine's CA bundle; it runs as 65532:65532. Equal sources
// give equal digests: every timestamp is SOURCE_DATE_EPOCH, or the time of
// the last commit.
//
// push uploads every tarball it finds in -in to REG/<name>:V, with the
// credentials of the default keychain (docker login, or the helpers that
// ~/.docker/config.json names). V defaults to the version the image was
// built with.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "images:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage:
  images build -out DIR [-version V] [-platform OS/ARCH[/VARIANT]] [-tools]
  images push -in DIR -registry REG [-version V] [-insecure]`

// run dispatches to the subcommand that args name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("missing subcommand")
	}
	switch args[0] {
	case "build":
		b := &builder{compile: goBuild, stdout: stdout}
		return b.run(ctx, args[1:], stderr)
	case "push":
		p := &pusher{stdout: stdout}
		return p.run(ctx, args[1:], stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown subcommand %q", args[0])
}

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
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
)

// runPrecompute is `recserve precompute`: it starts a precompute run on a
// frontend, waits for it and reports it, as the operator's CronJob runs
// it off-peak. The run itself happens in the frontend, which holds the
// live config, the models and the users' state.
func runPrecompute(args []string) error {
	fs := flag.NewFlagSet("recserve "+config.CommandPrecompute, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: recserve %s --%s URL\n\n"+
			"Starts a precompute run on the frontend at URL (the token of $%s, if set,\n"+
			"as the bearer token), waits for it to finish and exits 0 when it succeeded.\n"+
			"A run already going on is waited for instead. The finished run is printed\n"+
			"and written to %s.\n\n",
			config.CommandPrecompute, config.FlagFrontend, config.EventsTokenEnv, config.TerminationMessagePath)
		fs.PrintDefaults()
	}
	frontend := fs.String(config.FlagFrontend, "", "Base URL of the frontend, e.g. http://explore-frontend:8080 (required).")
	wait := fs.Duration(config.FlagPrecomputeWait, time.Hour, "Longest time the run may take: the frontend stops it then, and the command fails.")
	poll := fs.Duration("poll", 2*time.Second, "How often the run is checked.")
	resultFile := fs.String("result-file", config.TerminationMessagePath, "File the finished run is written to as JSON, where it exists; none when empty.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *frontend == "" || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("--%s is required and no argument is taken", config.FlagFrontend)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	c := &precomputeClient{base: strings.TrimSuffix(*frontend, "/"), token: os.Getenv(config.EventsTokenEnv), http: &http.Client{Timeout: 30 * time.Second}}
	run, err := c.run(ctx, *poll)
	if run != nil {
		b, _ := json.Marshal(run)
		fmt.Println(string(b))
		if *resultFile != "" && err == nil {
			// Where the kubelet provides the file (see main): the run is
			// what the operator reports of the Job.
			if f, ferr := os.OpenFile(*resultFile, os.O_WRONLY|os.O_TRUNC, 0); ferr == nil {
				_, _ = f.Write(b)
				_ = f.Close()
			}
		}
	}
	return err
}

type precomputeClient struct {
	base, token string
	http        *http.Client
}

// run starts a run, or finds the one going on, and waits for it.
func (c *precomputeClient) run(ctx context.Context, poll time.Duration) (*config.PrecomputeRun, error) {
	started, err := c.start(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "precompute run %s started on %s\n", started.ID, c.base)
	last := time.Now()
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return started, fmt.Errorf("failed to see precompute run %s finish: %w", started.ID, ctx.Err())
		case <-t.C:
		}
		run, err := c.last(ctx)
		if err != nil {
			return started, err
		}
		if run.ID != started.ID {
			return run, fmt.Errorf("failed to follow precompute run %s: the frontend's last run is %q (it restarted, or another replica answered)", started.ID, run.ID)
		}
		if !run.Finished.IsZero() {
			if run.Error != "" {
				return run, fmt.Errorf("failed precompute run %s, after %d of %d users: %s", run.ID, run.Done, run.Users, run.Error)
			}
			fmt.Fprintf(os.Stderr, "precompute run %s stored %d lists for %d users in %s (%d users' funnel failed)\n",
				run.ID, run.Stored, run.Users, run.Finished.Sub(run.Started).Round(time.Millisecond), run.Failed)
			return run, nil
		}
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "precompute run %s: %d of %d users, %d lists stored\n", run.ID, run.Done, run.Users, run.Stored)
		}
	}
}

// start asks for a run: the one started, or the one already going on.
func (c *precomputeClient) start(ctx context.Context) (*config.PrecomputeRun, error) {
	target := c.base + config.PrecomputePath
	if d, ok := ctx.Deadline(); ok {
		// The frontend stops the run when this command gives up on it.
		target += "?deadline=" + url.QueryEscape(time.Until(d).Round(time.Second).String())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to start a precompute run: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("failed to start a precompute run: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusAccepted:
		var run config.PrecomputeRun
		if err := json.Unmarshal(body, &run); err != nil {
			return nil, fmt.Errorf("failed to parse the frontend's run: %w", err)
		}
		return &run, nil
	case http.StatusConflict:
		var busy struct {
			Run *config.PrecomputeRun `json:"run"`
		}
		if err := json.Unmarshal(body, &busy); err != nil || busy.Run == nil {
			return nil, fmt.Errorf("failed to start a precompute run: another runs and the frontend did not say which: %s", strings.TrimSpace(string(body)))
		}
		fmt.Fprintf(os.Stderr, "precompute run %s is already going on; waiting for it\n", busy.Run.ID)
		return busy.Run, nil
	}
	return nil, fmt.Errorf("failed to start a precompute run: the frontend answered %s: %s", resp.Status, errorText(body))
}

// last reads the frontend's last run.
func (c *precomputeClient) last(ctx context.Context) (*config.PrecomputeRun, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+config.PrecomputePath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to read the precompute run: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("failed to read the precompute run: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failed to read the precompute run: %s: %s", resp.Status, errorText(body))
	}
	var run config.PrecomputeRun
	if err := json.Unmarshal(body, &run); err != nil {
		return nil, fmt.Errorf("failed to parse the frontend's run: %w", err)
	}
	return &run, nil
}

// errorText is the error message of an API error body, or the body.
func errorText(body []byte) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}

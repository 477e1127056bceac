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

// Package tuning measures online tuning of the value weights in a closed
// loop without a cluster: the funnel runs in process on a synthetic world,
// each trial serves a weight vector to the world's users, and their
// engagement is drawn from the world's planted model; the planted model
// also gives each weight vector's exact expected objective, against which
// the tuner is judged.
package tuning

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/recpipeline/recpipeline/runtime/config"
	"github.com/recpipeline/recpipeline/runtime/internal/dataset"
	"github.com/recpipeline/recpipeline/runtime/internal/serving/engine"
	"github.com/recpipeline/recpipeline/runtime/internal/training/synth"
)

// Sim serves a world in process and measures weight vectors on its users.
type Sim struct {
	eng   *engine.Engine
	cfg   config.Config
	truth *synth.World
	// Users are the users every trial serves.
	Users []string
	// N is the length of each list.
	N int
	// Objective weighs the events' expected counts per impression.
	Objective synth.Weights
	now       time.Time
	rev       int
}

// NewSim serves cfg (the funnel on the world truth describes) with eng,
// for the first users of the world.
func NewSim(eng *engine.Engine, cfg *config.Config, truth *synth.World, users, n int) *Sim {
	s := &Sim{eng: eng, cfg: *cfg, truth: truth, N: n, Objective: synth.DefaultWeights(), now: time.Now()}
	for u := range min(users, truth.NumUsers()) {
		s.Users = append(s.Users, synth.UserID(u))
	}
	return s
}

// lists serves every user a list under weights w (event → weight, over
// the config's own).
func (s *Sim) lists(ctx context.Context, w map[string]float64) ([][2][]int, error) {
	c := s.cfg
	c.Live.Weights = maps.Clone(s.cfg.Live.Weights)
	maps.Copy(c.Live.Weights, w)
	s.rev++
	if err := s.eng.Apply(&c, fmt.Sprintf("trial-%d", s.rev)); err != nil {
		return nil, fmt.Errorf("failed to serve weights %v: %w", w, err)
	}
	out := make([][2][]int, 0, len(s.Users))
	for _, user := range s.Users {
		resp, err := s.eng.Recommend(ctx, &engine.Request{User: user, N: s.N, Now: s.now})
		if err != nil {
			return nil, fmt.Errorf("failed to serve %s: %w", user, err)
		}
		u, _ := synth.ParseID('u', user)
		var items []int
		for _, it := range resp.Items {
			if i, ok := synth.ParseID('i', it.ID); ok {
				items = append(items, i)
			}
		}
		out = append(out, [2][]int{{u}, items})
	}
	return out, nil
}

// Expected is the exact expected objective per impression of serving
// weights w to the users: the planted model's value of every item served.
func (s *Sim) Expected(ctx context.Context, w map[string]float64) (float64, error) {
	lists, err := s.lists(ctx, w)
	if err != nil {
		return 0, err
	}
	var sum float64
	var n int
	for _, l := range lists {
		for _, i := range l[1] {
			sum += s.truth.TrueValue(l[0][0], i, s.Objective)
			n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("no item was served")
	}
	return sum / float64(n), nil
}

// Measure serves weights w to the users and draws their engagement from
// the planted model, as a trial on live traffic counts it: the objective
// per impression and the variance of that mean, over users (the unit a
// trial draws).
func (s *Sim) Measure(ctx context.Context, r *rand.Rand, w map[string]float64) (mean, variance float64, err error) {
	lists, err := s.lists(ctx, w)
	if err != nil {
		return 0, 0, err
	}
	types := []dataset.EventType{dataset.Click, dataset.Like, dataset.Comment, dataset.Share, dataset.SeeLess}
	values, counts := make([]float64, 0, len(lists)), make([]float64, 0, len(lists))
	var total, n float64
	for _, l := range lists {
		var v float64
		for _, i := range l[1] {
			p := s.truth.TrueProbabilities(l[0][0], i)
			for _, t := range types {
				if r.Float64() < p.Of(t) {
					v += s.Objective[t]
				}
			}
		}
		values, counts = append(values, v), append(counts, float64(len(l[1])))
		total += v
		n += float64(len(l[1]))
	}
	if n == 0 {
		return 0, 0, fmt.Errorf("no item was served")
	}
	mean = total / n
	// The delta method's variance of a ratio of sums over users.
	var ss float64
	for k := range values {
		d := values[k] - mean*counts[k]
		ss += d * d
	}
	return mean, ss / (n * n), nil
}

// Box is a search box over event weights.
type Box struct {
	Events []string
	Lo, Hi []float64
}

// weights maps a point of the box to event weights.
func (b Box) weights(x []float64) map[string]float64 {
	w := map[string]float64{}
	for i, e := range b.Events {
		w[e] = x[i]
	}
	return w
}

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

package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Bounds shared with the RecPipeline API's validation.
const (
	MaxBudget  = 20000
	MaxWeight  = 1000.0
	MaxSources = 16
	MaxRules   = 16
)

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	eventRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
)

// Validate reports every problem of c, each prefixed with the path of the
// field at fault.
func (c *Config) Validate() error {
	v := &validator{}
	if c.Version != SchemaVersion {
		v.add("version", "is %d, this runtime reads version %d", c.Version, SchemaVersion)
	}
	if c.Pipeline == "" {
		v.add("pipeline", "must be set")
	}
	v.deploy(&c.Deploy)
	if rev, err := DeployRevisionOf(&c.Deploy); err == nil && c.DeployRevision != "" && rev != c.DeployRevision {
		v.add("deployRevision", "is %q, the deploy part hashes to %q", c.DeployRevision, rev)
	}
	v.live(&c.Live, c.Deploy.Models)
	return v.err()
}

type validator struct{ errs []error }

func (v *validator) add(path, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

func (v *validator) err() error { return errors.Join(v.errs...) }

func (v *validator) uri(path, uri string, required bool) {
	switch {
	case uri == "":
		if required {
			v.add(path, "must be set")
		}
	case strings.HasPrefix(uri, "file:///"), strings.HasPrefix(uri, "http://"), strings.HasPrefix(uri, "https://"):
	default:
		v.add(path, "%q must start with file:///, http:// or https://", uri)
	}
}

func (v *validator) deploy(d *Deploy) {
	v.uri("deploy.catalog", d.Catalog, true)
	switch d.Store.Type {
	case "Memory":
		if d.Store.Redis != nil {
			v.add("deploy.store.redis", "must be unset for the Memory store")
		}
	case "Redis":
		if d.Store.Redis == nil || d.Store.Redis.Address == "" {
			v.add("deploy.store.redis.address", "must be set for the Redis store")
		}
	default:
		v.add("deploy.store.type", "%q is not Memory or Redis", d.Store.Type)
	}
	if n := d.Store.SeenItems; n < 0 || n > MaxSeenItems {
		v.add("deploy.store.seenItems", "is %d, must be between 1 and %d, or unset for %d", n, MaxSeenItems, DefaultSeenItems)
	}
	if n := d.Store.Follows; n < 0 || n > MaxFollows {
		v.add("deploy.store.follows", "is %d, must be between 1 and %d, or unset for %d", n, MaxFollows, DefaultFollows)
	}
	if n := d.PublishedItems; n < 0 || n > MaxPublishedItems {
		v.add("deploy.publishedItems", "is %d, must be between 1 and %d, or unset for %d", n, MaxPublishedItems, DefaultPublishedItems)
	}
	if n := d.Store.Users; n < 0 || n > MaxUsers {
		v.add("deploy.store.users", "is %d, must be between 1 and %d, or unset for %d", n, MaxUsers, DefaultUsers)
	}
	seen := map[string]bool{}
	for i, m := range d.Models {
		path := fmt.Sprintf("deploy.models[%d]", i)
		if !nameRE.MatchString(m.Name) {
			v.add(path+".name", "%q is not a DNS label", m.Name)
		}
		if seen[m.Name] {
			v.add(path+".name", "%q is declared twice", m.Name)
		}
		seen[m.Name] = true
		v.uri(path+".uri", m.URI, true)
	}
	if lg := d.Logging; lg != nil {
		if !strings.HasPrefix(lg.Dir, "file:///") {
			v.add("deploy.logging.dir", "%q must start with file:///", lg.Dir)
		}
		if lg.MaxFileBytes < 0 {
			v.add("deploy.logging.maxFileBytes", "is %d, must be positive, or unset for %d", lg.MaxFileBytes, DefaultLogFileBytes)
		}
		if lg.MaxFiles < 0 {
			v.add("deploy.logging.maxFiles", "is %d, must be positive, or unset for %d", lg.MaxFiles, DefaultLogFiles)
		}
	}
}

func (v *validator) precompute(p *Precompute) {
	if p.Serve != PrecomputeAlways && p.Serve != PrecomputeWhenSaturated && p.Serve != PrecomputeNever {
		v.add("live.precompute.serve", "%q is not %s, %s or %s", p.Serve, PrecomputeAlways, PrecomputeWhenSaturated, PrecomputeNever)
	}
	if p.TTL <= 0 {
		v.add("live.precompute.ttl", "is %s, must be positive", time.Duration(p.TTL))
	}
	if p.Size < 1 || p.Size > MaxPrecomputeSize {
		v.add("live.precompute.size", "is %d, must be between 1 and %d", p.Size, MaxPrecomputeSize)
	}
	if p.ActiveWithin < 0 {
		v.add("live.precompute.activeWithin", "is %s, must not be negative", time.Duration(p.ActiveWithin))
	}
	if p.Top < 0 || p.Top > MaxPrecomputeUsers {
		v.add("live.precompute.top", "is %d, must be between 1 and %d, or unset for %d", p.Top, MaxPrecomputeUsers, DefaultPrecomputeUsers)
	}
	v.uri("live.precompute.usersURI", p.UsersURI, false)
	if p.ActiveWithin == 0 && p.UsersURI == "" {
		v.add("live.precompute", "selects no user: set activeWithin, usersURI or both")
	}
}

// live checks the live part, in the order its fields appear: retrieval,
// the ranking stages, the weights, the clock and the rerank rules.
func (v *validator) live(l *Live, models []Model) {
	known := modelSet{}
	for _, m := range models {
		known[m.Name] = true
	}
	v.retrieval(&l.Retrieval, known)
	v.stages(l, known)
	v.weights(l.Weights)
	v.clock(l.Clock)
	v.rerankRules(l.Rerank.Rules)
	v.unit("live.rerank.newItemRisk", l.Rerank.NewItemRisk)
	v.unit("live.servedSampleRate", l.ServedSampleRate)
	if p := l.Precompute; p != nil {
		v.precompute(p)
	}
	for i, src := range l.Retrieval.Sources {
		if src.Type == SourcePrecomputed && src.URI == "" && l.Precompute == nil {
			v.add(fmt.Sprintf("live.retrieval.sources[%d].uri", i), "must be set unless live.precompute is: a Precomputed source without one reads the precompute runs' lists")
		}
	}
	if f := l.Freshness; f != nil {
		if f.MaxAge <= 0 {
			v.add("live.freshness.maxAge", "is %s, must be positive", time.Duration(f.MaxAge))
		}
		if f.Slots < 1 || f.Slots > MaxFreshSlots {
			v.add("live.freshness.slots", "is %d, must be between 1 and %d", f.Slots, MaxFreshSlots)
		}
	}
	v.experiments(l, models)
}

// experiments checks the arms: their names and shares, that each names
// sources of the live config, and that the live config each serves is
// valid (its problems are reported under the arm's path).
func (v *validator) experiments(l *Live, models []Model) {
	if len(l.Experiments) > MaxExperiments {
		v.add("live.experiments", "has %d arms, at most %d", len(l.Experiments), MaxExperiments)
	}
	names := map[string]bool{}
	total, end := 0.0, 0.0
	type slice struct{ from, to float64 }
	var armSlices []slice
	for i := range l.Experiments {
		x := &l.Experiments[i]
		path := fmt.Sprintf("live.experiments[%d]", i)
		switch {
		case len(x.Name) > 63 || !nameRE.MatchString(x.Name):
			v.add(path+".name", "%q is not a DNS label", x.Name)
		case x.Name == ControlArm:
			v.add(path+".name", "%q names the users in no arm", x.Name)
		case names[x.Name]:
			v.add(path+".name", "%q is declared twice", x.Name)
		}
		names[x.Name] = true
		if !finite(x.Traffic) || x.Traffic <= 0 || x.Traffic > 1 {
			v.add(path+".traffic", "is %v, must be more than 0 and at most 1", x.Traffic)
		} else {
			total += x.Traffic
			from := end
			if x.From != nil {
				from = *x.From
			}
			switch {
			case !finite(from) || from < 0 || from+x.Traffic > 1+1e-9:
				v.add(path+".from", "the arm's users [%.4g, %.4g) are not within [0, 1)", from, from+x.Traffic)
			default:
				for _, o := range armSlices {
					if from < o.to-1e-12 && o.from < from+x.Traffic-1e-12 {
						v.add(path+".from", "the arm's users [%.4g, %.4g) overlap another arm's [%.4g, %.4g)", from, from+x.Traffic, o.from, o.to)
					}
				}
				armSlices = append(armSlices, slice{from, from + x.Traffic})
			}
			end = from + x.Traffic
		}
		if x.Live != nil {
			v.wholeArm(path, x)
		}
		for j, o := range x.Sources {
			if !slices.ContainsFunc(l.Retrieval.Sources, func(s Source) bool { return s.Name == o.Name }) {
				v.add(fmt.Sprintf("%s.sources[%d].name", path, j), "%q is not a source of live.retrieval.sources", o.Name)
			}
		}
		arm := l.Arm(x)
		sub := &validator{}
		sub.live(&arm, models)
		for _, err := range sub.errs {
			v.add(path+" ("+x.Name+")", "%v", err)
		}
	}
	if total > 1+1e-9 {
		v.add("live.experiments", "the arms' traffic sums to %v, more than 1", total)
	}
}

// wholeArm checks an arm that serves a whole live config: it carries no
// overrides besides and no experiments of its own. The models it names are
// loaded beside the control arm's by the stages that use them
// (Config.StageModels).
func (v *validator) wholeArm(path string, x *Experiment) {
	if len(x.Weights) > 0 || len(x.Sources) > 0 || x.Rerank != nil || x.FirstStageModel != "" || x.SecondStageModel != "" {
		v.add(path, "has both a whole live config and overrides; set one")
	}
	if len(x.Live.Experiments) > 0 {
		v.add(path+".live.experiments", "an arm cannot hold arms")
	}
}

// modelSet holds the names of the models of deploy.models.
type modelSet map[string]bool

// model checks that name is a model of deploy.models.
func (v *validator) model(known modelSet, path, name string) {
	if !known[name] {
		v.add(path, "%q is not a model of deploy.models", name)
	}
}

// shadow checks a ranker's shadow model: listed, not the ranker's own, and
// a share of the requests.
func (v *validator) shadow(known modelSet, path string, r Ranker) {
	if r.Shadow == nil {
		return
	}
	v.model(known, path+".model", r.Shadow.Model)
	if r.Shadow.Model == r.Model {
		v.add(path+".model", "%q is the stage's own model", r.Shadow.Model)
	}
	if !finite(r.Shadow.Fraction) || r.Shadow.Fraction <= 0 || r.Shadow.Fraction > 1 {
		v.add(path+".fraction", "is %v, must be more than 0 and at most 1", r.Shadow.Fraction)
	}
}

// budget checks a candidate count against MaxBudget.
func (v *validator) budget(path string, n int) {
	if n < 1 || n > MaxBudget {
		v.add(path, "is %d, must be between 1 and %d", n, MaxBudget)
	}
}

func (v *validator) retrieval(r *Retrieval, known modelSet) {
	v.budget("live.retrieval.candidates", r.Candidates)
	if len(r.Sources) == 0 || len(r.Sources) > MaxSources {
		v.add("live.retrieval.sources", "has %d sources, must have between 1 and %d", len(r.Sources), MaxSources)
	}
	names := map[string]bool{}
	for i, s := range r.Sources {
		path := fmt.Sprintf("live.retrieval.sources[%d]", i)
		if !nameRE.MatchString(s.Name) {
			v.add(path+".name", "%q is not a DNS label", s.Name)
		}
		if names[s.Name] {
			v.add(path+".name", "%q is used by two sources", s.Name)
		}
		names[s.Name] = true
		v.source(path, &s, known)
	}
}

// source checks the fields of one retrieval source other than its name.
func (v *validator) source(path string, s *Source, known modelSet) {
	if !finite(s.Weight) || s.Weight < 0 || s.Weight > MaxWeight {
		v.add(path+".weight", "is %v, must be between 0 and %v", s.Weight, MaxWeight)
	}
	v.budget(path+".limit", s.Limit)
	if s.Timeout <= 0 {
		v.add(path+".timeout", "must be positive")
	}
	switch s.Type {
	case SourceTwoTowerANN, SourceItemToItemANN:
		v.model(known, path+".model", s.Model)
		if s.Type == SourceItemToItemANN && s.SeedItems < 1 {
			v.add(path+".seedItems", "must be at least 1")
		}
		if s.Ef < 0 || s.Ef > MaxBudget {
			v.add(path+".ef", "is %d, must be between 0 (the default) and %d", s.Ef, MaxBudget)
		}
	case SourceFollowedAuthorsRecent:
		if s.MaxAge <= 0 {
			v.add(path+".maxAge", "must be positive")
		}
	case SourcePopular:
		if s.Window <= 0 {
			v.add(path+".window", "must be positive")
		}
	case SourcePrecomputed:
		// Without a URI the source reads the precompute runs' lists.
		v.uri(path+".uri", s.URI, false)
	default:
		v.add(path+".type", "%q is not a known source type", s.Type)
	}
}

// stages checks the rankers' models and that each stage keeps no more
// candidates than the one before it.
func (v *validator) stages(l *Live, known modelSet) {
	v.model(known, "live.firstStage.model", l.FirstStage.Model)
	v.model(known, "live.secondStage.model", l.SecondStage.Model)
	if l.SecondStage.RetrievalModel != "" {
		v.model(known, "live.secondStage.retrievalModel", l.SecondStage.RetrievalModel)
	}
	v.shadow(known, "live.firstStage.shadow", l.FirstStage)
	v.shadow(known, "live.secondStage.shadow", l.SecondStage)
	v.budget("live.firstStage.keep", l.FirstStage.Keep)
	v.budget("live.secondStage.keep", l.SecondStage.Keep)
	v.budget("live.rerank.size", l.Rerank.Size)
	if l.FirstStage.Keep > l.Retrieval.Candidates {
		v.add("live.firstStage.keep", "is %d, more than live.retrieval.candidates (%d)", l.FirstStage.Keep, l.Retrieval.Candidates)
	}
	if l.SecondStage.Keep > l.FirstStage.Keep {
		v.add("live.secondStage.keep", "is %d, more than live.firstStage.keep (%d)", l.SecondStage.Keep, l.FirstStage.Keep)
	}
	if l.Rerank.Size > l.SecondStage.Keep {
		v.add("live.rerank.size", "is %d, more than live.secondStage.keep (%d)", l.Rerank.Size, l.SecondStage.Keep)
	}
}

func (v *validator) weights(weights map[string]float64) {
	if len(weights) == 0 {
		v.add("live.weights", "must name at least one event")
	}
	for event, w := range weights {
		path := "live.weights." + event
		if !eventRE.MatchString(event) {
			v.add(path, "%q is not an event name", event)
		}
		if !finite(w) || math.Abs(w) > MaxWeight {
			v.add(path, "is %v, must be a finite number between -%v and %v", w, MaxWeight, MaxWeight)
		}
	}
}

func (v *validator) clock(c Clock) {
	switch c.Type {
	case "", ClockEvent, ClockWall:
	default:
		v.add("live.clock.type", "%q is not %s or %s", c.Type, ClockEvent, ClockWall)
	}
}

func (v *validator) rerankRules(rules []Rule) {
	if len(rules) > MaxRules {
		v.add("live.rerank.rules", "has %d rules, at most %d", len(rules), MaxRules)
	}
	for i, rule := range rules {
		path := fmt.Sprintf("live.rerank.rules[%d]", i)
		switch rule.Type {
		case RuleAuthorDiversity:
			if rule.MinGap < 1 {
				v.add(path+".minGap", "must be at least 1")
			}
		case RuleIntegrityFilter:
			v.unit(path+".maxRisk", rule.MaxRisk)
		case RuleIntegrityDownrank:
			v.unit(path+".above", rule.Above)
			v.unit(path+".factor", rule.Factor)
		default:
			v.add(path+".type", "%q is not a known rule type", rule.Type)
		}
	}
}

func (v *validator) unit(path string, x float64) {
	if !finite(x) || x < 0 || x > 1 {
		v.add(path, "is %v, must be between 0 and 1", x)
	}
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

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
	"bytes"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// valid is a config the runtime accepts.
func valid() *Config {
	c := &Config{
		Version:  SchemaVersion,
		Pipeline: "recs/explore",
		Deploy: Deploy{
			Catalog: "file:///data/catalog",
			Store:   Store{Type: "Memory"},
			Models:  []Model{{Name: "two-tower", URI: "file:///models/tt"}, {Name: "mtml", URI: "https://models.example/mtml.tar.gz"}},
		},
		Live: Live{
			Retrieval: Retrieval{Candidates: 1500, Sources: []Source{
				{Name: "recent", Type: SourceFollowedAuthorsRecent, Weight: 0.3, Limit: 400, Timeout: Duration(50 * time.Millisecond), MaxAge: Duration(72 * time.Hour)},
				{Name: "ann", Type: SourceTwoTowerANN, Weight: 0.5, Limit: 800, Timeout: Duration(50 * time.Millisecond), Model: "two-tower"},
				{Name: "i2i", Type: SourceItemToItemANN, Weight: 0.1, Limit: 400, Timeout: Duration(50 * time.Millisecond), Model: "two-tower", SeedItems: 20},
				{Name: "pop", Type: SourcePopular, Weight: 0.1, Limit: 200, Timeout: Duration(50 * time.Millisecond), Window: Duration(24 * time.Hour)},
			}},
			FirstStage:  Ranker{Model: "two-tower", Keep: 300},
			SecondStage: Ranker{Model: "mtml", Keep: 100},
			Weights:     map[string]float64{"click": 1, "see_less": -8},
			Rerank:      Rerank{Size: 25, Rules: []Rule{{Type: RuleAuthorDiversity, MinGap: 3}, {Type: RuleIntegrityFilter, MaxRisk: 0.9}}},
		},
	}
	c.DeployRevision, _ = DeployRevisionOf(&c.Deploy)
	return c
}

func encode(t testing.TB, c *Config) []byte {
	t.Helper()
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRoundTrip(t *testing.T) {
	b := encode(t, valid())
	c, err := Parse(b)
	if err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	again := encode(t, c)
	if !bytes.Equal(b, again) {
		t.Errorf("encoding is not stable across a round trip:\n%s\n%s", b, again)
	}
	if Revision(b) != Revision(again) || len(Revision(b)) != 16 {
		t.Errorf("revision %q vs %q", Revision(b), Revision(again))
	}
	if time.Duration(c.Live.Retrieval.Sources[0].MaxAge) != 72*time.Hour {
		t.Errorf("maxAge decoded as %v", time.Duration(c.Live.Retrieval.Sources[0].MaxAge))
	}
}

func TestParseFillsAMissingDeployRevision(t *testing.T) {
	c := valid()
	want := c.DeployRevision
	c.DeployRevision = ""
	got, err := Parse(encode(t, c))
	if err != nil {
		t.Fatalf("a config without deployRevision was refused: %v", err)
	}
	if got.DeployRevision != want {
		t.Errorf("deployRevision filled in as %q, want %q", got.DeployRevision, want)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	cases := map[string]struct {
		mutate func(*Config)
		want   string
	}{
		"another schema version": {func(c *Config) { c.Version = 2 }, "version: is 2"},
		"arm named control":      {func(c *Config) { c.Live.Experiments = []Experiment{{Name: ControlArm, Traffic: 0.1}} }, "live.experiments[0].name"},
		"arm traffic zero":       {func(c *Config) { c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0}} }, "live.experiments[0].traffic"},
		"arms over all users": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.6}, {Name: "b", Traffic: 0.6}}
		}, "live.experiments: the arms' traffic sums to 1.2"},
		"arms overlap": {func(c *Config) {
			from := 0.05
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1}, {Name: "b", Traffic: 0.1, From: &from}}
		}, "live.experiments[1].from: the arm's users [0.05, 0.15) overlap another arm's [0, 0.1)"},
		"arm past the last user": {func(c *Config) {
			from := 0.95
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, From: &from}}
		}, "live.experiments[0].from: the arm's users [0.95, 1.05"},
		"arm overrides an unknown source": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Sources: []SourceOverride{{Name: "nope"}}}}
		}, "live.experiments[0].sources[0].name"},
		"arm with a bad weight": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Weights: map[string]float64{"like": 5000}}}
		}, "live.experiments[0] (a): live.weights.like"},
		"arm rerank larger than its funnel": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Rerank: &Rerank{Size: 100000}}}
		}, "live.experiments[0] (a): live.rerank.size"},
		"whole arm with overrides too": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Live: wholeArm(c), Weights: map[string]float64{"like": 1}}}
		}, "live.experiments[0]: has both a whole live config and overrides"},
		"whole arm with arms": {func(c *Config) {
			l := wholeArm(c)
			l.Experiments = []Experiment{{Name: "b", Traffic: 0.1}}
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Live: l}}
		}, "live.experiments[0].live.experiments: an arm cannot hold arms"},
		"arm switches to a model not deployed": {func(c *Config) {
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, SecondStageModel: "mtml-v9"}}
		}, `live.experiments[0] (a): live.secondStage.model: "mtml-v9" is not a model`},
		"whole arm names a model not deployed": {func(c *Config) {
			l := wholeArm(c)
			l.SecondStage.Model = "mtml-v2"
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Live: l}}
		}, `live.experiments[0] (a): live.secondStage.model`},
		"whole arm invalid": {func(c *Config) {
			l := wholeArm(c)
			l.Rerank.Size = 100000
			c.Live.Experiments = []Experiment{{Name: "a", Traffic: 0.1, Live: l}}
		}, "live.experiments[0] (a): live.rerank.size"},
		"shadow of an unknown model": {func(c *Config) {
			c.Live.SecondStage.Shadow = &Shadow{Model: "nope", Fraction: 0.1}
		}, `live.secondStage.shadow.model: "nope" is not a model`},
		"shadow of the stage's own model": {func(c *Config) {
			c.Live.SecondStage.Shadow = &Shadow{Model: "mtml", Fraction: 0.1}
		}, `live.secondStage.shadow.model: "mtml" is the stage's own model`},
		"shadow of no requests": {func(c *Config) {
			c.Live.FirstStage.Shadow = &Shadow{Model: "mtml", Fraction: 0}
		}, "live.firstStage.shadow.fraction: is 0"},
		"deploy revision mismatch":   {func(c *Config) { c.DeployRevision = "0000" }, "deployRevision:"},
		"catalog scheme":             {func(c *Config) { c.Deploy.Catalog = "s3://x" }, "deploy.catalog:"},
		"redis without address":      {func(c *Config) { c.Deploy.Store = Store{Type: "Redis"} }, "deploy.store.redis.address"},
		"unknown store":              {func(c *Config) { c.Deploy.Store = Store{Type: "Disk"} }, "deploy.store.type"},
		"duplicate model":            {func(c *Config) { c.Deploy.Models[1].Name = "two-tower" }, "deploy.models[1].name"},
		"source model unknown":       {func(c *Config) { c.Live.Retrieval.Sources[1].Model = "nope" }, "live.retrieval.sources[1].model"},
		"duplicate source":           {func(c *Config) { c.Live.Retrieval.Sources[2].Name = "ann" }, "live.retrieval.sources[2].name"},
		"negative source weight":     {func(c *Config) { c.Live.Retrieval.Sources[0].Weight = -1 }, "live.retrieval.sources[0].weight"},
		"NaN source weight":          {func(c *Config) { c.Live.Retrieval.Sources[0].Weight = math.NaN() }, "live.retrieval.sources[0].weight"},
		"zero timeout":               {func(c *Config) { c.Live.Retrieval.Sources[0].Timeout = 0 }, "live.retrieval.sources[0].timeout"},
		"unknown source type":        {func(c *Config) { c.Live.Retrieval.Sources[3].Type = "Random" }, "live.retrieval.sources[3].type"},
		"i2i without seeds":          {func(c *Config) { c.Live.Retrieval.Sources[2].SeedItems = 0 }, "live.retrieval.sources[2].seedItems"},
		"negative ef":                {func(c *Config) { c.Live.Retrieval.Sources[1].Ef = -1 }, "live.retrieval.sources[1].ef"},
		"funnel grows":               {func(c *Config) { c.Live.SecondStage.Keep = 400 }, "live.secondStage.keep"},
		"rerank larger than ranked":  {func(c *Config) { c.Live.Rerank.Size = 101 }, "live.rerank.size"},
		"infinite weight":            {func(c *Config) { c.Live.Weights["like"] = math.Inf(1) }, "live.weights.like"},
		"weight out of range":        {func(c *Config) { c.Live.Weights["like"] = 5000 }, "live.weights.like"},
		"bad event name":             {func(c *Config) { c.Live.Weights["See Less"] = 1 }, "live.weights.See Less"},
		"no weights":                 {func(c *Config) { c.Live.Weights = nil }, "live.weights: must name"},
		"unknown rule":               {func(c *Config) { c.Live.Rerank.Rules[0].Type = "Shuffle" }, "live.rerank.rules[0].type"},
		"risk threshold above one":   {func(c *Config) { c.Live.Rerank.Rules[1].MaxRisk = 1.5 }, "live.rerank.rules[1].maxRisk"},
		"diversity without its gap":  {func(c *Config) { c.Live.Rerank.Rules[0].MinGap = 0 }, "live.rerank.rules[0].minGap"},
		"second stage model unknown": {func(c *Config) { c.Live.SecondStage.Model = "x" }, "live.secondStage.model"},
		"negative seen items":        {func(c *Config) { c.Deploy.Store.SeenItems = -1 }, "deploy.store.seenItems: is -1, must be between 1 and 100000, or unset for 10000"},
		"too many seen items":        {func(c *Config) { c.Deploy.Store.SeenItems = MaxSeenItems + 1 }, "deploy.store.seenItems: is 100001"},
		"unknown clock":              {func(c *Config) { c.Live.Clock.Type = "event" }, `live.clock.type: "event" is not Event or Wall`},
		"stored lists without precompute": {func(c *Config) {
			c.Live.Retrieval.Sources[3] = Source{Name: "offpeak", Type: SourcePrecomputed, Weight: 0.1, Limit: 50, Timeout: Duration(time.Second)}
		}, "live.retrieval.sources[3].uri: must be set unless live.precompute is"},
		"precompute selects no user": {func(c *Config) {
			c.Live.Precompute = &Precompute{Serve: PrecomputeAlways, TTL: Duration(time.Hour), Size: 25}
		}, "live.precompute: selects no user"},
		"precompute serve unknown": {func(c *Config) {
			c.Live.Precompute = &Precompute{Serve: "Sometimes", TTL: Duration(time.Hour), Size: 25, Top: 10, ActiveWithin: Duration(time.Hour)}
		}, `live.precompute.serve: "Sometimes" is not Always, WhenSaturated or Never`},
		"precompute without ttl": {func(c *Config) {
			c.Live.Precompute = &Precompute{Serve: PrecomputeNever, Size: 25, ActiveWithin: Duration(time.Hour)}
		}, "live.precompute.ttl: is 0s, must be positive"},
		"served sample rate above one": {func(c *Config) { c.Live.ServedSampleRate = 2 }, "live.servedSampleRate"},
		"logs not in a local directory": {func(c *Config) {
			c.Deploy.Logging = &Logging{Dir: "s3://logs"}
		}, `deploy.logging.dir: "s3://logs" must start with file:///`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := valid()
			tc.mutate(c)
			if !strings.HasPrefix(tc.want, "deployRevision") {
				c.DeployRevision, _ = DeployRevisionOf(&c.Deploy)
			}
			err := c.Validate()
			if err == nil {
				t.Fatalf("accepted; want an error naming %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name %q", err, tc.want)
			}
		})
	}
}

// wholeArm is a copy of c's live config, as a rollout's candidate arm.
func wholeArm(c *Config) *Live {
	l := c.Live
	l.Weights = maps.Clone(c.Live.Weights)
	l.Retrieval.Sources = slices.Clone(c.Live.Retrieval.Sources)
	l.Rerank.Rules = slices.Clone(c.Live.Rerank.Rules)
	return &l
}

// An arm with a whole live config serves it as is, without the control
// arm's experiments.
func TestArmServesItsWholeLiveConfig(t *testing.T) {
	c := valid()
	l := wholeArm(c)
	l.Weights["like"] = -50
	l.Retrieval.Candidates--
	c.Live.Experiments = []Experiment{{Name: "canary", Traffic: 0.1, Live: l}, {Name: "b", Traffic: 0.1, Weights: map[string]float64{"click": 3}}}
	if err := c.Validate(); err != nil {
		t.Fatalf("a config with a whole arm was refused: %v", err)
	}
	arm := c.Live.Arm(&c.Live.Experiments[0])
	if arm.Weights["like"] != -50 || arm.Retrieval.Candidates != c.Live.Retrieval.Candidates-1 || len(arm.Experiments) != 0 {
		t.Errorf("the whole arm serves weights %v, candidates %d, experiments %v", arm.Weights, arm.Retrieval.Candidates, arm.Experiments)
	}
}

// A whole arm may switch a stage's model: that stage then loads both, and
// only that stage's revision changes.
func TestAWholeArmsModelIsLoadedBesideTheControlArms(t *testing.T) {
	c := valid()
	c.Deploy.Models = append(c.Deploy.Models, Model{Name: "mtml-v2", URI: "file:///models/mtml-v2"})
	c.DeployRevision, _ = DeployRevisionOf(&c.Deploy)
	before := map[string]string{}
	for _, stage := range SplitStages() {
		before[stage], _ = c.StageRevision(stage)
	}
	l := wholeArm(c)
	l.SecondStage.Model = "mtml-v2"
	c.Live.Experiments = []Experiment{{Name: "canary", Traffic: 0.1, Live: l}}
	if err := c.Validate(); err != nil {
		t.Fatalf("an arm switching the second stage's model was refused: %v", err)
	}
	if got := c.StageModels(StageRankerSecond); !slices.Equal(got, []string{"mtml", "mtml-v2", "two-tower"}) {
		t.Errorf("ranker-second loads %v, want both MTML models and the retrieval model", got)
	}
	for _, stage := range SplitStages() {
		after, _ := c.StageRevision(stage)
		if changed := after != before[stage]; changed != (stage == StageRankerSecond) {
			t.Errorf("stage %s revision changed: %v", stage, changed)
		}
	}
}

// The clock and the seen-set size are optional: a config without them (as
// the operator renders it) keeps its bytes and revisions, and takes the
// defaults; set, they are read back.
func TestClockAndSeenItemsAreOptional(t *testing.T) {
	c, err := Parse(encode(t, valid()))
	if err != nil {
		t.Fatal(err)
	}
	b := string(encode(t, c))
	if strings.Contains(b, "clock") || strings.Contains(b, "seenItems") {
		t.Errorf("a config without a clock or seenItems encodes them:\n%s", b)
	}
	if got := c.Live.Clock.TypeOrDefault(); got != ClockEvent {
		t.Errorf("default clock %q, want %q", got, ClockEvent)
	}
	if got := c.Deploy.Store.SeenItemsOrDefault(); got != DefaultSeenItems || DefaultSeenItems != 10000 {
		t.Errorf("default seenItems %d, want 10000", got)
	}

	set := valid()
	set.Live.Clock = Clock{Type: ClockWall}
	set.Deploy.Store.SeenItems = 50000
	set.DeployRevision, _ = DeployRevisionOf(&set.Deploy)
	b = string(encode(t, set))
	for _, want := range []string{`"clock": {`, `"type": "Wall"`, `"seenItems": 50000`} {
		if !strings.Contains(b, want) {
			t.Errorf("encoded config lacks %s:\n%s", want, b)
		}
	}
	got, err := Parse([]byte(b))
	if err != nil {
		t.Fatalf("a config with a wall clock and 50000 seen items was refused: %v", err)
	}
	if got.Live.Clock.TypeOrDefault() != ClockWall || got.Deploy.Store.SeenItemsOrDefault() != 50000 {
		t.Errorf("read back clock %q and seenItems %d, want Wall and 50000", got.Live.Clock.Type, got.Deploy.Store.SeenItems)
	}
	if got.DeployRevision == c.DeployRevision {
		t.Error("seenItems does not change the deploy revision: pods would not restart to apply it")
	}
}

func TestParseRefusesMalformedDocuments(t *testing.T) {
	good := string(encode(t, valid()))
	cases := map[string]struct {
		doc  string
		want string
	}{
		"not JSON":        {"version: 1", "failed to decode config"},
		"unknown field":   {strings.Replace(good, `"pipeline"`, `"pipline"`, 1), "unknown field"},
		"trailing data":   {good + "{}", "trailing data"},
		"bad duration":    {strings.Replace(good, `"50ms"`, `"fast"`, 1), "invalid duration"},
		"number duration": {strings.Replace(good, `"50ms"`, `50`, 1), "duration must be a string"},
		"empty":           {"", "failed to decode config"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: no input makes Parse panic, and whatever it accepts encodes
// and parses again to the same revision.
func FuzzParse(f *testing.F) {
	f.Add(encode(f, valid()))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"live":{"weights":{"x":1e309}}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Marshal(c)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		c2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded config refused: %v", err)
		}
		if b2, _ := Marshal(c2); !bytes.Equal(b2, again) {
			t.Fatalf("encoding not stable")
		}
	})
}

func TestArmAppliesItsOverridesOnly(t *testing.T) {
	c := valid()
	limit, weight := 7, 0.9
	x := Experiment{
		Name: "a", Traffic: 0.2, Weights: map[string]float64{"like": -3},
		Sources: []SourceOverride{{Name: c.Live.Retrieval.Sources[1].Name, Limit: &limit, Weight: &weight}},
		Rerank:  &Rerank{Size: 5},
	}
	c.Live.Experiments = []Experiment{x}
	if err := c.Validate(); err != nil {
		t.Fatalf("a config with an arm was refused: %v", err)
	}
	arm := c.Live.Arm(&x)
	if arm.Weights["like"] != -3 || arm.Weights["click"] != c.Live.Weights["click"] {
		t.Errorf("arm weights %v, want like -3 over %v", arm.Weights, c.Live.Weights)
	}
	if s := arm.Retrieval.Sources[1]; s.Limit != 7 || s.Weight != 0.9 {
		t.Errorf("arm source %+v, want limit 7 and weight 0.9", s)
	}
	if arm.Rerank.Size != 5 || len(arm.Experiments) != 0 {
		t.Errorf("arm rerank %+v, experiments %v", arm.Rerank, arm.Experiments)
	}
	if c.Live.Weights["like"] == -3 || c.Live.Retrieval.Sources[1].Limit == 7 || c.Live.Rerank.Size == 5 {
		t.Error("building the arm changed the control arm's config")
	}
}

// An experiment that switches the second stage's model makes that stage
// load both; the arm ranks with its own.
func TestAnArmsModelOverrideIsLoadedByItsStage(t *testing.T) {
	c := valid()
	c.Deploy.Models = append(c.Deploy.Models, Model{Name: "mtml-v2", URI: "file:///models/mtml-v2"})
	c.DeployRevision, _ = DeployRevisionOf(&c.Deploy)
	c.Live.Experiments = []Experiment{{Name: "v2", Traffic: 0.2, SecondStageModel: "mtml-v2"}}
	if err := c.Validate(); err != nil {
		t.Fatalf("an arm on another listed model was refused: %v", err)
	}
	if got := c.StageModels(StageRankerSecond); !slices.Equal(got, []string{"mtml", "mtml-v2", "two-tower"}) {
		t.Errorf("ranker-second loads %v, want both MTML models and the retrieval model", got)
	}
	if got := c.StageModels(StageRankerFirst); slices.Contains(got, "mtml-v2") {
		t.Errorf("ranker-first loads %v", got)
	}
	if arm := c.Live.Arm(&c.Live.Experiments[0]); arm.SecondStage.Model != "mtml-v2" || arm.FirstStage.Model != c.Live.FirstStage.Model {
		t.Errorf("the arm ranks with %q then %q", arm.FirstStage.Model, arm.SecondStage.Model)
	}
}

// A stage with a shadow model loads it; no other stage does.
func TestAShadowModelIsLoadedByItsStageOnly(t *testing.T) {
	c := valid()
	c.Deploy.Models = append(c.Deploy.Models, Model{Name: "mtml-v2", URI: "file:///models/mtml-v2"})
	c.DeployRevision, _ = DeployRevisionOf(&c.Deploy)
	c.Live.SecondStage.Shadow = &Shadow{Model: "mtml-v2", Fraction: 0.1}
	if err := c.Validate(); err != nil {
		t.Fatalf("a shadow model was refused: %v", err)
	}
	for _, stage := range SplitStages() {
		if loads := slices.Contains(c.StageModels(stage), "mtml-v2"); loads != (stage == StageRankerSecond) {
			t.Errorf("stage %s loads the shadow model: %v", stage, loads)
		}
	}
}

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

// Package config is the schema of the runtime config: the JSON document the
// operator renders into a pipeline's ConfigMap and every recserve pod reads.
// The controller imports it to render and the runtime to parse and validate,
// so the two cannot drift.
//
// A config has two parts. Deploy holds what a pod loads at start (catalog,
// models, store, stage endpoints); a change to it rolls the pods, and a pod
// whose own deploy revision differs from a config's keeps serving what it
// has. Live holds what a pod swaps in without a restart (source mix, funnel
// sizes, event weights, rerank rules).
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is the version of this schema; a pod refuses others.
const SchemaVersion = 1

// Config is the whole rendered runtime config.
type Config struct {
	// Version is SchemaVersion.
	Version int `json:"version"`
	// Pipeline is "<namespace>/<name>" of the RecPipeline.
	Pipeline string `json:"pipeline"`
	// DeployRevision is the Revision of Deploy. The operator always sets
	// it; a hand-written config may leave it out and Parse fills it in.
	DeployRevision string `json:"deployRevision,omitempty"`
	Deploy         Deploy `json:"deploy"`
	Live           Live   `json:"live"`
}

// Deploy is what a pod loads at start.
type Deploy struct {
	// Catalog is the item catalog location: file:///… or http(s)://….
	Catalog string `json:"catalog"`
	Store   Store  `json:"store"`
	// Models by name.
	Models []Model `json:"models"`
	// Endpoints of the stages, as gRPC targets (host:port), keyed by stage
	// name; empty in a single-process (--stage=all) deployment.
	Endpoints map[string]string `json:"endpoints,omitempty"`
	// Volumes are the directories the operator mounts into the pods
	// (persistent volume claims); a config that needs a new one only
	// reaches pods that have it.
	Volumes []string `json:"volumes,omitempty"`
	// PublishedItems is how many items new_item events may add to the
	// catalog a process loaded (they join the catalog, the embeddings
	// and the indexes for the life of the process); past it a new_item is
	// refused with a 400 until the catalog is rebuilt with them. 1 to
	// MaxPublishedItems; 0 (unset) means DefaultPublishedItems (100,000).
	PublishedItems int `json:"publishedItems,omitempty"`
	// Logging, when set, makes the frontend log the events it accepts and
	// a sample of the lists it serves as rotating files in Logging.Dir.
	Logging *Logging `json:"logging,omitempty"`
}

// Logging locates and sizes the frontend's logs.
type Logging struct {
	// Dir is the directory the logs are written to: file:///… .
	Dir string `json:"dir"`
	// MaxFileBytes is the size at which a log file is rotated; 0 means
	// DefaultLogFileBytes.
	MaxFileBytes int64 `json:"maxFileBytes,omitempty"`
	// MaxFiles is how many rotated files of each log are kept; 0 means
	// DefaultLogFiles.
	MaxFiles int `json:"maxFiles,omitempty"`
}

// Defaults of Logging.
const (
	DefaultLogFileBytes = 64 << 20
	DefaultLogFiles     = 100
	// DefaultServedSampleRate is Live.ServedSampleRate's default.
	DefaultServedSampleRate = 0.01
)

// Bounds of Deploy.PublishedItems.
const (
	DefaultPublishedItems = 100000
	MaxPublishedItems     = 10000000
)

// PublishedItemsOrDefault returns PublishedItems, or its default when unset.
func (d *Deploy) PublishedItemsOrDefault() int {
	if d.PublishedItems == 0 {
		return DefaultPublishedItems
	}
	return d.PublishedItems
}

// Store selects the real-time state backend.
type Store struct {
	// Type is "Memory" or "Redis".
	Type  string      `json:"type"`
	Redis *RedisStore `json:"redis,omitempty"`
	// SeenItems is how many distinct items seen (impressed) are kept per
	// user, the most recent ones; the funnel never recommends those again,
	// and older ones may come back. 1 to MaxSeenItems; 0 (unset) means
	// DefaultSeenItems (10,000).
	SeenItems int `json:"seenItems,omitempty"`
	// Follows is how many authors a user may follow; a follow past it is
	// ignored until an unfollow makes room. 1 to MaxFollows; 0 (unset)
	// means DefaultFollows (5,000).
	Follows int `json:"follows,omitempty"`
	// Users is how many users the Memory store keeps state for; past it
	// the least recently active are forgotten. 1 to MaxUsers; 0 (unset)
	// means DefaultUsers (1,000,000).
	Users int `json:"users,omitempty"`
}

// Bounds of Store.SeenItems, Store.Follows and Store.Users.
const (
	DefaultSeenItems = 10000
	MaxSeenItems     = 100000
	DefaultFollows   = 5000
	MaxFollows       = 100000
	DefaultUsers     = 1000000
	MaxUsers         = 100000000
)

// SeenItemsOrDefault returns SeenItems, or its default when unset.
func (s *Store) SeenItemsOrDefault() int {
	if s.SeenItems == 0 {
		return DefaultSeenItems
	}
	return s.SeenItems
}

// RedisStore locates the Redis server.
type RedisStore struct {
	Address string `json:"address"`
	DB      int    `json:"db,omitempty"`
	// KeyPrefix is prepended to every key.
	KeyPrefix string `json:"keyPrefix"`
	// PasswordEnv names the environment variable holding the password,
	// empty for none.
	PasswordEnv string `json:"passwordEnv,omitempty"`
}

// Model is a model artifact.
type Model struct {
	Name string `json:"name"`
	// URI is file:///… (a directory holding manifest.json and
	// model.safetensors) or http(s)://… of a .tar.gz.
	URI string `json:"uri"`
}

// Live is what a pod swaps in without a restart.
type Live struct {
	Retrieval   Retrieval          `json:"retrieval"`
	FirstStage  Ranker             `json:"firstStage"`
	SecondStage Ranker             `json:"secondStage"`
	Weights     map[string]float64 `json:"weights"`
	Rerank      Rerank             `json:"rerank"`
	// Freshness, when set, keeps new items by authors the user follows
	// through the rankers' cuts and leads the list with them.
	Freshness *Freshness `json:"freshness,omitempty"`
	// Clock is the time a request is served at: what item ages, the
	// popularity decay and FollowedAuthorsRecent's maxAge are measured
	// against. Unset: ClockEvent.
	Clock Clock `json:"clock,omitzero"`
	// Experiments are arms served to shares of the users, each with
	// overrides of this live config; the users in no arm are served it as
	// is, the ControlArm.
	Experiments []Experiment `json:"experiments,omitempty"`
	// ExperimentSalt is hashed with each user id to bucket the user into
	// an arm; changing it reshuffles users. Empty: the pipeline's name.
	ExperimentSalt string `json:"experimentSalt,omitempty"`
	// ServedSampleRate is the share of served lists the frontend logs
	// (Deploy.Logging), chosen by a hash of the request id, in [0, 1].
	ServedSampleRate float64 `json:"servedSampleRate,omitempty"`
	// Precompute, when set, serves lists computed off-peak and says for
	// whom a precompute run computes them.
	Precompute *Precompute `json:"precompute,omitempty"`
}

// Precompute serving policies (Precompute.Serve): a user's fresh list
// answers whole always, only when the frontend is saturated, or never (a
// Precomputed source without a URI may still merge it into the funnel).
const (
	PrecomputeAlways        = "Always"
	PrecomputeWhenSaturated = "WhenSaturated"
	PrecomputeNever         = "Never"
)

// Bounds of Precompute.
const (
	MaxPrecomputeSize  = 1000
	MaxPrecomputeUsers = 10000000
	// DefaultPrecomputeUsers bounds the users active within the window
	// when Top is unset.
	DefaultPrecomputeUsers = 1000000
)

// Precompute is how lists computed off-peak are made and served.
type Precompute struct {
	// Serve is PrecomputeAlways, PrecomputeWhenSaturated or
	// PrecomputeNever.
	Serve string `json:"serve"`
	// TTL is how long a list is served after it is computed.
	TTL Duration `json:"ttl"`
	// Size is the length of each list, 1 to MaxPrecomputeSize.
	Size int `json:"size"`
	// ActiveWithin selects the users with an event in this window before
	// a run, on the event clock; 0 selects none this way.
	ActiveWithin Duration `json:"activeWithin,omitempty"`
	// Top keeps the most active of them, at most this many; 0 means
	// DefaultPrecomputeUsers.
	Top int `json:"top,omitempty"`
	// UsersURI locates a file of user ids, one per line, to compute lists
	// for too: file:///… or http(s)://….
	UsersURI string `json:"usersURI,omitempty"`
}

// Freshness is the policy for items just published by followed authors:
// the models know nothing of them yet and score them low, so without it
// they would be cut before any follower could see them.
type Freshness struct {
	// MaxAge is how new an item must be, at the request's time.
	MaxAge Duration `json:"maxAge"`
	// Slots is how many such items, the newest, each ranker keeps beyond
	// its keep and the second stage puts at the head of its list (the
	// rerank rules apply after: the author gap may move them down, the
	// integrity filter drop them). 1 to MaxFreshSlots.
	Slots int `json:"slots"`
}

// MaxFreshSlots bounds Freshness.Slots.
const MaxFreshSlots = 10

// ControlArm names the users in no experiment.
const ControlArm = "control"

// MaxExperiments bounds Live.Experiments.
const MaxExperiments = 20

// Experiment is one arm: a share of the users, bucketed by a stable hash
// of (salt, user), served the live config with these overrides.
type Experiment struct {
	// Name is a DNS label, not ControlArm, unique among the arms.
	Name string `json:"name"`
	// Traffic is the arm's share of the users, in (0, 1]; the arms'
	// shares sum to at most 1.
	Traffic float64 `json:"traffic"`
	// From, when set, is where the arm's slice of the users' buckets
	// starts: the arm serves the users whose bucket falls in [From,
	// From+Traffic). Unset, the slice starts where the previous arm's
	// ends (0 for the first). Slices may not overlap. A rollout's arms
	// keep their starts while their shares grow, so that no user moves
	// from one to the other.
	From *float64 `json:"from,omitempty"`
	// Weights override the value's weights, event by event.
	Weights map[string]float64 `json:"weights,omitempty"`
	// Sources override retrieval sources' weight and limit, by name.
	Sources []SourceOverride `json:"sources,omitempty"`
	// Rerank, when set, replaces the rerank size and rules.
	Rerank *Rerank `json:"rerank,omitempty"`
	// FirstStageModel and SecondStageModel, when set, replace the rankers'
	// models (entries of deploy.models): the ranker stage then loads both
	// its own model and the arm's.
	FirstStageModel  string `json:"firstStageModel,omitempty"`
	SecondStageModel string `json:"secondStageModel,omitempty"`
	// Live, when set, is the whole live config the arm serves, in place of
	// overrides (Weights, Sources and Rerank are then empty): the operator
	// serves a progressive rollout's candidate so. It may not hold
	// experiments, nor load a model the control arm's stages do not load.
	Live *Live `json:"live,omitempty"`
}

// SourceOverride changes one retrieval source in an arm.
type SourceOverride struct {
	Name   string   `json:"name"`
	Weight *float64 `json:"weight,omitempty"`
	Limit  *int     `json:"limit,omitempty"`
}

// Arm returns the live config the arm x serves: l with x's overrides. The
// result shares no maps or slices with l that the overrides change.
func (l *Live) Arm(x *Experiment) Live {
	if x.Live != nil {
		a := *x.Live
		a.Experiments, a.ExperimentSalt = nil, ""
		return a
	}
	a := *l
	a.Experiments, a.ExperimentSalt = nil, ""
	a.Weights = make(map[string]float64, len(l.Weights)+len(x.Weights))
	for k, w := range l.Weights {
		a.Weights[k] = w
	}
	for k, w := range x.Weights {
		a.Weights[k] = w
	}
	a.Retrieval.Sources = append([]Source(nil), l.Retrieval.Sources...)
	for _, o := range x.Sources {
		for i := range a.Retrieval.Sources {
			if s := &a.Retrieval.Sources[i]; s.Name == o.Name {
				if o.Weight != nil {
					s.Weight = *o.Weight
				}
				if o.Limit != nil {
					s.Limit = *o.Limit
				}
			}
		}
	}
	if x.Rerank != nil {
		a.Rerank = *x.Rerank
	}
	if x.FirstStageModel != "" {
		a.FirstStage.Model = x.FirstStageModel
	}
	if x.SecondStageModel != "" {
		a.SecondStage.Model = x.SecondStageModel
	}
	return a
}

// Clock types.
const (
	// ClockEvent serves at the time of the newest event the store has
	// recorded, or of the catalog's newest item if that is later, plus one
	// millisecond (so that an engagement recorded at that time counts as
	// past), and never later than the wall clock. A historical log
	// replayed into the store is served as it was when it was live.
	ClockEvent = "Event"
	// ClockWall serves at the wall-clock time of the request.
	ClockWall = "Wall"
)

// Clock selects the serving clock.
type Clock struct {
	// Type is ClockEvent or ClockWall; empty means ClockEvent.
	Type string `json:"type,omitempty"`
}

// TypeOrDefault returns Type, or ClockEvent when it is empty.
func (c Clock) TypeOrDefault() string {
	if c.Type == "" {
		return ClockEvent
	}
	return c.Type
}

// Retrieval mixes the sources.
type Retrieval struct {
	// Candidates is the budget after mixing and de-duplication.
	Candidates int      `json:"candidates"`
	Sources    []Source `json:"sources"`
}

// Source types, as in the RecPipeline API.
const (
	SourceFollowedAuthorsRecent = "FollowedAuthorsRecent"
	SourceTwoTowerANN           = "TwoTowerANN"
	SourceItemToItemANN         = "ItemToItemANN"
	SourcePopular               = "Popular"
	SourcePrecomputed           = "Precomputed"
)

// Source is one candidate source.
type Source struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Weight  float64  `json:"weight"`
	Limit   int      `json:"limit"`
	Timeout Duration `json:"timeout"`
	// Model of the ANN sources.
	Model string `json:"model,omitempty"`
	// MaxAge of FollowedAuthorsRecent.
	MaxAge Duration `json:"maxAge,omitempty"`
	// Window (decay half-life) of Popular.
	Window Duration `json:"window,omitempty"`
	// SeedItems of ItemToItemANN.
	SeedItems int `json:"seedItems,omitempty"`
	// Ef of the ANN sources: the candidate list of the HNSW search
	// (efSearch); 0 takes the index's default, raised to the number of items
	// asked. Below that number, the search keeps the best of all the items
	// it scores on its way rather than of the ef it keeps: less time, fewer
	// of the true nearest items past the first ef.
	Ef int `json:"ef,omitempty"`
	// URI of Precomputed lists; empty, the source reads the lists of the
	// precompute runs (Live.Precompute) from the store.
	URI string `json:"uri,omitempty"`
}

// Ranker is one ranking stage.
type Ranker struct {
	Model string `json:"model"`
	Keep  int    `json:"keep"`
	// RetrievalModel is the TwoTower model whose score a ranker's
	// two_tower_score input reads; default: the model of the first
	// TwoTowerANN source.
	RetrievalModel string `json:"retrievalModel,omitempty"`
	// Shadow, when set, is a model of the same kind scored beside Model on
	// a share of the requests and never served: the stage reports how the
	// two orders agree (Status.Shadow).
	Shadow *Shadow `json:"shadow,omitempty"`
}

// Shadow is a candidate model ranked beside a stage's own.
type Shadow struct {
	Model string `json:"model"`
	// Fraction of the requests ranked by both, in (0, 1].
	Fraction float64 `json:"fraction"`
}

// Rule types, as in the RecPipeline API.
const (
	RuleAuthorDiversity   = "AuthorDiversity"
	RuleIntegrityFilter   = "IntegrityFilter"
	RuleIntegrityDownrank = "IntegrityDownrank"
)

// Rerank is the final stage.
type Rerank struct {
	Size  int    `json:"size"`
	Rules []Rule `json:"rules,omitempty"`
	// NewItemRisk is the integrity risk of an item published live (a
	// new_item event) that names none, in [0, 1].
	NewItemRisk float64 `json:"newItemRisk,omitempty"`
}

// Rule is one rerank rule; each type reads its own parameters.
type Rule struct {
	Type    string  `json:"type"`
	MinGap  int     `json:"minGap,omitempty"`
	MaxRisk float64 `json:"maxRisk,omitempty"`
	Above   float64 `json:"above,omitempty"`
	Factor  float64 `json:"factor,omitempty"`
}

// Status is what a pod answers on StatusPath.
type Status struct {
	// ConfigRevision is the Revision of the config the pod serves.
	ConfigRevision string `json:"configRevision"`
	// DeployRevision is the deploy revision the pod started with.
	DeployRevision string `json:"deployRevision"`
	// Stage the pod runs.
	Stage string `json:"stage"`
	// RejectedRevision is the revision of the last config the pod refused,
	// and Rejected the reason, if any.
	RejectedRevision string `json:"rejectedRevision,omitempty"`
	Rejected         string `json:"rejected,omitempty"`
	// Shadow reports, by ranker stage with a shadow model, how the
	// shadow's order agreed with the served one since the pod started or
	// the shadow model last changed.
	Shadow map[string]ShadowCounts `json:"shadow,omitempty"`
	// Arms counts, by experiment arm, what the pod served and the events
	// on it since the pod started (frontend pods; empty without
	// experiments). The operator's rollout analysis reads them.
	Arms map[string]ArmCounts `json:"arms,omitempty"`
	// Sources counts, by retrieval source, the frontend's latest requests
	// (at most 1,000) and those the source failed or missed its deadline
	// in; the operator reports a source failing too often in the
	// pipeline's status.
	Sources map[string]SourceCounts `json:"sources,omitempty"`
	// Precompute reports the frontend's precomputed lists: its last run
	// and how often a list answered.
	Precompute *PrecomputeCounts `json:"precompute,omitempty"`
}

// PrecomputeCounts is a frontend's precompute report.
type PrecomputeCounts struct {
	// LastRun is the last run the pod made, if any, finished or not.
	LastRun *PrecomputeRun `json:"lastRun,omitempty"`
	// Hits counts the requests answered from a precomputed list, Misses
	// those of users with none, Stale those whose list was of another
	// arm or config revision or too short once filtered, since the pod
	// started.
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Stale  int64 `json:"stale"`
}

// PrecomputeRun is one precompute run of a frontend.
type PrecomputeRun struct {
	// ID names the run.
	ID string `json:"id"`
	// Started and Finished are wall-clock times; Finished is zero while
	// the run goes on.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
	// Users is how many users were selected, Done how many of them were
	// taken so far and Stored how many lists were stored.
	Users  int `json:"users"`
	Done   int `json:"done"`
	Stored int `json:"stored"`
	// Failed counts the users whose funnel failed (a stage down or past
	// its time), passed over.
	Failed int `json:"failed,omitempty"`
	// Revision is the config revision the lists were computed with.
	Revision string `json:"revision"`
	// Error says why the run failed; empty when it succeeded or goes on.
	Error string `json:"error,omitempty"`
}

// SourceWindow is how many of its latest requests a frontend reports each
// source's failures over (Status.Sources).
const SourceWindow = 1000

// SourceCounts is how a retrieval source fared in a frontend's latest
// requests.
type SourceCounts struct {
	Requests int64 `json:"requests"`
	Failed   int64 `json:"failed"`
}

// ShadowCounts sums the comparisons of a stage's shadow model with its
// served model.
type ShadowCounts struct {
	Model string `json:"model"`
	// Compared is how many requests both ranked.
	Compared int64 `json:"compared"`
	// Overlap and Spearman are the sums, over the compared requests, of
	// the share of the served list the shadow also kept and of the rank
	// correlation of the items both kept.
	Overlap  float64 `json:"overlap"`
	Spearman float64 `json:"spearman"`
}

// ArmCounts is what one arm served and the events it earned.
type ArmCounts struct {
	// Requests is how many recommendation lists the arm served.
	Requests int64 `json:"requests"`
	// PassedOver counts the arm's lists, beside Requests, that went
	// without a ranker stage (it failed or was late): the arm's config did
	// not rank them, so the events on them count for no arm.
	PassedOver int64 `json:"passedOver,omitempty"`
	// Events counts, by event type, the events on items the arm served
	// (impressions included).
	Events map[string]int64 `json:"events"`
	// Users counts the users whose events Moments sums over, and Moments
	// holds, keyed "a*b" (event types in sorted order), Σ over those users
	// of the user's count of a times the user's count of b: with them the
	// variance of a per-impression rate is estimated over users, the unit
	// the arms draw at random (a user's impressions are not independent of
	// each other).
	Users   int64              `json:"users,omitempty"`
	Moments map[string]float64 `json:"moments,omitempty"`
}

// MomentKey is the key of Moments for event types a and b.
func MomentKey(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "*" + b
}

// Duration is a time.Duration written as a Go duration string ("50ms").
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"50ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Marshal encodes c canonically: the same config always yields the same
// bytes, so Revision is stable across renders.
func Marshal(c *Config) ([]byte, error) {
	// encoding/json writes struct fields in declaration order and map keys
	// sorted, which is canonical enough for hashing.
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("failed to encode config: %w", err)
	}
	return append(b, '\n'), nil
}

// Parse decodes and validates a config. Unknown fields are refused so that a
// typo never passes silently.
func Parse(b []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("failed to decode config: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("failed to decode config: trailing data after the document")
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.DeployRevision == "" {
		rev, err := DeployRevisionOf(&c.Deploy)
		if err != nil {
			return nil, err
		}
		c.DeployRevision = rev
	}
	return &c, nil
}

// Revision is a short content hash of an encoded document.
func Revision(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// DeployRevisionOf hashes the deploy part of a config.
func DeployRevisionOf(d *Deploy) (string, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("failed to encode deploy config: %w", err)
	}
	return Revision(b), nil
}

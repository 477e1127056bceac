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

// Package synth generates a synthetic recommendation world whose ground truth
// is known: a catalog, users, a follow graph and an interaction log written in
// the runtime/internal/dataset formats, plus the planted latent factors that produced
// them, so that a trained model can be compared with an oracle.
//
// # The planted model
//
// Topics. There are Config.Topics topic centers c_k, random unit vectors in
// R^Dim, with popularities π_k drawn from Gamma(2,1) and normalised.
//
// Users. A user u has a topic z_u ~ π and a latent vector
// u = c_{z_u} + ε, ε ~ N(0, (0.45²/Dim)·I), and an activity bias β_u ~ N(0, 0.3²).
// Users' activity (their share of the log) is log-normal, σ = 0.8.
//
// Authors. An author a has a topic z_a ~ π, a popularity p_a = rank_a^-1.1
// (a power law over a random ranking, largest 1) and is risky with
// probability Config.RiskyAuthors.
//
// Items. An item's author is drawn with weight p_a^0.5; its topic is the
// author's with probability 0.85, otherwise a draw from π; its latent vector
// is i = c_{z_i} + ε, ε ~ N(0, (0.5²/Dim)·I); its quality q_i ~ N(0, 0.5²); its
// integrity risk r_i ~ Beta(1, 15) (mean 0.06), or Beta(2, 3) (mean 0.4) for
// a risky author; it is created uniformly in [Start-Days, Start+Days).
//
// Observable features. Items' features are W_item·[i; q_i] + noise and users'
// features W_user·[u; β_u] + noise, with W entries N(0, 1) fixed per world
// and noise N(0, Config.FeatureNoise²): noisy linear projections of the
// latents, so a model can learn from them. Config.IDOnly withholds them
// (see below).
//
// Follow graph. A user starts with Poisson(Gamma(2, FollowsPerUser/2))
// follows. Each is, with probability 0.15, an author drawn by popularity,
// otherwise an author of topic k drawn by popularity within k, with
// P(k | u) ∝ π_k·exp(4⟨u, c_k⟩). follows.jsonl holds the graph at the start of
// the log; follow and unfollow events in the log change it.
//
// Impressions. Users' impressions come in sessions (about 8 impressions,
// seconds apart) at uniform times over the Days of the log. Each impression's
// item comes from one source (Config.Mix): Popular (weight p_a·exp(q_i)),
// Followed (one of the 10 most recent items of a followed author), Topic (an
// item of a topic drawn with P(k | u) ∝ π_k·exp(5⟨u, c_k⟩), chosen by a
// previous-generation ranker, below) or Random; an item is only shown once
// created.
//
// Exposure. A real log is what an earlier recommender chose to show, so its
// impressions already lean towards each user's taste, and a model of taste
// beats a popularity ranking on it. The Topic source plays that
// recommender: it draws Config.TopicCandidates items of the topic uniformly
// and shows the one a noisy ranker scores best,
// ClickScale·⟨u, i⟩ + q_i + N(0, RankerNoise²), the true click logit up to
// the user's constant bias plus an error as large as the spread of true
// scores within a topic (about 0.65), so it is right about half the time.
// TopicCandidates = 1 is the uniform draw of a world without such a
// recommender.
//
// Engagement. With s = ⟨u, i⟩ the affinity and Model the parameters:
//
//	P(click)            = σ(ClickScale·s + ClickBias + q_i + β_u)
//	P(like | click)     = σ(LikeScale·s + LikeBias + q_i)
//	P(comment | click)  = σ(CommentScale·s + CommentBias + 0.5·q_i)
//	P(share | click)    = σ(ShareScale·s + ShareBias + q_i)
//	P(follow | click)   = σ(FollowScale·s + FollowBias), if not yet following
//	P(see_less | no click) = σ(-SeeLessScale·s + SeeLessRisk·r_i + SeeLessBias)
//
// and a see_less on a followed author's item unfollows them with probability
// UnfollowOnSeeLess. TrueProbabilities gives the unconditional probabilities
// per impression; Oracle ranks by their weighted sum.
//
// Generation is deterministic for a Config (Seed included) whatever
// Config.Workers is, and its memory is a few dozen bytes per item and per
// event; the files are written streaming.
//
// # Id-only worlds and the MovieLens view
//
// A public ratings log has no features: users and items are bare IDs. An
// id-only world (Config.IDOnly) has the same shape: its catalog and user
// table have feature_dim 0 and empty features. Its planted structure is
// untouched: the features are drawn and then discarded rather than not
// drawn, so every other draw is that of the same Config without IDOnly,
// and the two worlds' follows, logs and truth rows (truth_*.jsonl) are
// byte for byte the same. truth.json records IDOnly and no projections.
//
// WriteOptions.Format FormatMovieLens writes the log as a MovieLens
// ratings.csv instead of the JSONL files (MovieLensRatings gives the rows;
// FormatBoth writes both). There is one row per (user, item) pair with a
// click, like, comment or share, at the time of the first of them, in time
// order; every like, comment and share follows a click, so these are the
// clicked pairs. Its rating is 5 when the pair also has a like and a
// comment or share, 4 when it has a like, 3 otherwise: at least
// dataset.LikeRating exactly when the world has a like, so
// dataset.ReadMovieLens, which reads every row as an impression and a
// click and a rating from 4 as a like too, gives back the world's clicked
// and liked pairs. Impressions without a click, see_less, follow and
// unfollow make no row and change none: MovieLens has no negatives, and a
// row reads as a click. Repeated clicks of a pair make one row. userId and
// movieId are the world's indexes without the prefix: user "u12" is userId
// 12, item "i7" movieId 7 (UserID and ItemID give the IDs back).
package synth

import (
	"fmt"
	"runtime"
	"time"
)

// Config describes a world. Zero fields take the defaults noted beside them.
type Config struct {
	Users   int // default 1000
	Items   int // default 10000
	Authors int // default max(1, Items/20)
	Topics  int // default 12
	// Dim is the width of the latent vectors; default 16.
	Dim int
	// FeatureDim is the width of the observable user and item features;
	// default 8. With IDOnly it is the width they are drawn at and then
	// withheld.
	FeatureDim int
	// IDOnly withholds the observable features: the catalog and the user
	// table are written with feature_dim 0, and ItemFeatures and
	// UserFeatures are empty. Everything else is drawn as without it (the
	// features' noise included, then discarded), so the world's latents,
	// follow graph and log are those of the same Config without IDOnly, row
	// for row. Default false.
	IDOnly bool
	// EventsPerUser is the mean number of log rows per user; default 50.
	// Ignored when Events is set.
	EventsPerUser float64
	// Events is the approximate number of log rows (impressions and the
	// engagements they lead to); default Users·EventsPerUser.
	Events int
	// Days is the length of the log; default 30.
	Days int
	// Start is the time of the log's start; default 2025-01-01T00:00:00Z.
	Start time.Time
	// Seed selects the world; every value, 0 included, is a valid seed.
	Seed uint64
	// FollowsPerUser is the mean size of a user's initial follow set; default 8.
	FollowsPerUser float64
	// RiskyAuthors is the fraction of authors whose items are riskier; default 0.1.
	RiskyAuthors float64
	// FeatureNoise is the standard deviation of the noise on observable
	// features; default 0.25. Negative means none.
	FeatureNoise float64
	// Mix weighs the impression sources; default DefaultMix().
	Mix Mix
	// TopicCandidates is how many items of the topic the previous
	// recommender of the Topic source scores per impression (see the
	// package comment); default 10, 1 for a uniform draw.
	TopicCandidates int
	// RankerNoise is the standard deviation of that recommender's error on
	// the click logit; default 1. Negative means none.
	RankerNoise float64
	// Model holds the engagement parameters; default DefaultModel().
	Model Model
	// Workers is the number of goroutines; default GOMAXPROCS. The world
	// does not depend on it.
	Workers int
}

// Mix weighs the sources of impressions; weights need not sum to 1.
type Mix struct {
	Popular  float64 // items by author popularity and quality
	Followed float64 // recent items of followed authors
	Topic    float64 // items of the user's topics
	Random   float64 // any item
}

// DefaultMix is the impression mix used when Config.Mix is zero.
func DefaultMix() Mix { return Mix{Popular: 0.3, Followed: 0.25, Topic: 0.25, Random: 0.2} }

// Model holds the parameters of the engagement model (see the package
// comment).
type Model struct {
	ClickScale, ClickBias     float64
	LikeScale, LikeBias       float64
	CommentScale, CommentBias float64
	ShareScale, ShareBias     float64
	FollowScale, FollowBias   float64
	SeeLessScale, SeeLessRisk float64
	SeeLessBias               float64
	UnfollowOnSeeLess         float64
}

// DefaultModel is the engagement model used when Config.Model is zero.
func DefaultModel() Model {
	return Model{
		ClickScale: 3, ClickBias: -3.5,
		LikeScale: 2, LikeBias: -1.5,
		CommentScale: 1.5, CommentBias: -3.5,
		ShareScale: 1.5, ShareBias: -4,
		FollowScale: 2, FollowBias: -4.5,
		SeeLessScale: 2, SeeLessRisk: 5, SeeLessBias: -4,
		UnfollowOnSeeLess: 0.5,
	}
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	c.fillDefaults()
	return c, c.validate()
}

// fillDefaults sets the zero fields to their defaults and the negative
// noise levels to zero.
func (c *Config) fillDefaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Users, 1000)
	def(&c.Items, 10000)
	def(&c.Authors, max(1, c.Items/20))
	def(&c.Topics, 12)
	def(&c.Dim, 16)
	def(&c.FeatureDim, 8)
	def(&c.Days, 30)
	if c.EventsPerUser == 0 {
		c.EventsPerUser = 50
	}
	if c.Events == 0 {
		c.Events = int(float64(c.Users) * c.EventsPerUser)
	}
	if c.Start.IsZero() {
		c.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	c.Start = c.Start.UTC().Truncate(time.Second)
	if c.FollowsPerUser == 0 {
		c.FollowsPerUser = 8
	}
	if c.RiskyAuthors == 0 {
		c.RiskyAuthors = 0.1
	}
	switch {
	case c.FeatureNoise == 0:
		c.FeatureNoise = 0.25
	case c.FeatureNoise < 0:
		c.FeatureNoise = 0
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix()
	}
	def(&c.TopicCandidates, 10)
	switch {
	case c.RankerNoise == 0:
		c.RankerNoise = 1
	case c.RankerNoise < 0:
		c.RankerNoise = 0
	}
	if c.Model == (Model{}) {
		c.Model = DefaultModel()
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
}

// validate refuses negative or overlarge sizes and weights out of range.
func (c *Config) validate() error {
	switch {
	case min(c.Users, c.Items, c.Authors, c.Topics, c.Dim, c.FeatureDim, c.Days, c.Events, c.TopicCandidates) < 0:
		return fmt.Errorf("negative size in config %+v", *c)
	case max(c.Users, c.Items, c.Authors) > 1<<30:
		return fmt.Errorf("more than 2^30 users, items or authors")
	case min(c.Mix.Popular, c.Mix.Followed, c.Mix.Topic, c.Mix.Random) < 0:
		return fmt.Errorf("negative impression mix weight %+v", c.Mix)
	case c.RiskyAuthors > 1 || c.RiskyAuthors < 0:
		return fmt.Errorf("risky author fraction %v outside [0, 1]", c.RiskyAuthors)
	}
	return nil
}

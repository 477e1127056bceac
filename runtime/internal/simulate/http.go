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

package simulate

import (
	"context"
	"net/http"

	"github.com/recpipeline/recpipeline/runtime/internal/recclient"
)

// HTTP is a running recserve, as both the Recommender and the Sink of a
// simulation.
type HTTP struct {
	// Client makes the requests; recclient.WithBearer gives it the events
	// token when the pipeline has one.
	Client *http.Client
	// Base is recserve's URL without a path (recclient.BaseURL).
	Base string
}

var (
	_ Recommender = HTTP{}
	_ Sink        = HTTP{}
)

// Recommend asks GET /v1/recommendations.
func (h HTTP) Recommend(ctx context.Context, user string, n int) (recclient.Answer, error) {
	return recclient.Recommend(ctx, h.Client, h.Base, user, n)
}

// Post sends the events to POST /v1/events, in one request unless they
// pass recserve's limits, in order.
func (h HTTP) Post(ctx context.Context, events []recclient.Event) error {
	var enc recclient.Encoder
	for len(events) > 0 {
		enc.Reset()
		for len(events) > 0 && enc.Len() < recclient.MaxEvents && enc.Add(&events[0], recclient.MaxBodyBytes) {
			events = events[1:]
		}
		if err := recclient.PostEvents(ctx, h.Client, h.Base+"/v1/events", enc.Body(), enc.Len()); err != nil {
			return err
		}
	}
	return nil
}

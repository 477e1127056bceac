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

package stagepb

import (
	"time"

	"github.com/recpipeline/recpipeline/runtime/internal/serving/store"
)

// FromState is the message of a user's state, as the frontend sends it.
func FromState(s *store.UserState) *UserState {
	us := &UserState{User: s.User, NowUnixMs: s.Now.UnixMilli(), Follows: s.Follows}
	us.Engagements = make([]*Engagement, len(s.Engagements))
	for i, e := range s.Engagements {
		us.Engagements[i] = &Engagement{Item: e.Item, Type: string(e.Type), TimeUnixMs: e.Time.UnixMilli()}
	}
	return us
}

// State is the user's state a stage call carries.
func (x *UserState) State() *store.UserState {
	s := &store.UserState{
		User: x.GetUser(), Now: time.UnixMilli(x.GetNowUnixMs()), Follows: x.GetFollows(),
		Engagements: make([]store.Engagement, len(x.GetEngagements())),
	}
	for i, e := range x.GetEngagements() {
		s.Engagements[i] = store.Engagement{Item: e.Item, Type: store.EventType(e.Type), Time: time.UnixMilli(e.TimeUnixMs)}
	}
	return s
}

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

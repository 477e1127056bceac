package sources

import (
	"context"
	"testing"
	"time"
)

// BenchmarkMix mixes four overlapping sources of a few hundred candidates
// into a budget of 1500, as the sample pipeline does; allocations per
// request stay constant, none per candidate.
func BenchmarkMix(b *testing.B) {
	m := NewMixer([]Weighted{
		{Name: "a", Source: items(0, 400), Weight: 0.25, Limit: 400, Timeout: time.Second, Index: 0},
		{Name: "b", Source: items(200, 800), Weight: 0.45, Limit: 800, Timeout: time.Second, Index: 1},
		{Name: "c", Source: items(900, 400), Weight: 0.2, Limit: 400, Timeout: time.Second, Index: 2},
		{Name: "d", Source: items(1200, 200), Weight: 0.1, Limit: 200, Timeout: time.Second, Index: 3},
	}, catalog, nil)
	ctx := context.Background()
	dst := make([]Mixed, 0, 1500)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		dst, err = m.Mix(ctx, &Request{User: "u"}, 1500, nil, dst[:0])
		if err != nil {
			b.Fatal(err)
		}
	}
}

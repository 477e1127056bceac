package ann

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDot checks every dot product implementation against float64
// arithmetic, for lengths that exercise each unrolled step and its tail and
// for slices that start off any alignment.
func TestDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	buf := make([]float32, 300)
	for i := range buf {
		buf[i] = float32(rng.NormFloat64())
	}
	impls := map[string]func(a, b []float32) float32{"dot": dot, "dotGeneric": dotGeneric}
	for name, f := range impls {
		for n := 0; n <= 100; n++ {
			for _, off := range []int{0, 1, 3} {
				a, b := buf[off:off+n], buf[150+2*off:150+2*off+n]
				var want, mag float64
				for i := range a {
					want += float64(a[i]) * float64(b[i])
					mag += math.Abs(float64(a[i]) * float64(b[i]))
				}
				got := float64(f(a, b))
				if math.Abs(got-want) > 1e-5*(mag+1) {
					t.Errorf("%s, length %d, offset %d: got %g, want %g", name, n, off, got, want)
				}
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	tests := map[string]struct {
		in, want []float32
	}{
		"scales to unit length": {[]float32{3, 0, 4}, []float32{0.6, 0, 0.8}},
		"zero stays zero":       {[]float32{0, 0}, []float32{0, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			normalize(tc.in)
			for i := range tc.in {
				if math.Abs(float64(tc.in[i]-tc.want[i])) > 1e-6 {
					t.Fatalf("got %v, want %v", tc.in, tc.want)
				}
			}
		})
	}
}

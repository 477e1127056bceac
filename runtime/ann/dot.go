package ann

import "math"

// dotGeneric returns the inner product of a and b, which must have equal
// lengths. The loop is unrolled by eight with four accumulators so that the
// compiler keeps them in registers and hoists the bounds checks. It serves
// CPUs without AVX2 and FMA.
func dotGeneric(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+8 <= len(a); i += 8 {
		aa := a[i : i+8 : i+8]
		bb := b[i : i+8 : i+8]
		s0 += aa[0]*bb[0] + aa[4]*bb[4]
		s1 += aa[1]*bb[1] + aa[5]*bb[5]
		s2 += aa[2]*bb[2] + aa[6]*bb[6]
		s3 += aa[3]*bb[3] + aa[7]*bb[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// normalize scales v in place to unit length; a zero vector is left as is.
func normalize(v []float32) {
	n := math.Sqrt(float64(dot(v, v)))
	if n == 0 {
		return
	}
	inv := float32(1 / n)
	for i := range v {
		v[i] *= inv
	}
}

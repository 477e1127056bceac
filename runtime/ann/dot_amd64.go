//go:build amd64 && !purego

package ann

import "golang.org/x/sys/cpu"

// useAVX2 reports whether the CPU and OS support AVX2 and FMA, which the
// assembly dot product needs.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dot returns the inner product of a and b, which must have equal lengths.
func dot(a, b []float32) float32 {
	if useAVX2 {
		return dotAVX2(a, b[:len(a)])
	}
	return dotGeneric(a, b)
}

// dotAVX2 is dot with AVX2 and FMA; len(b) must be at least len(a).
//
//go:noescape
func dotAVX2(a, b []float32) float32

// prefetch starts loading v into the cache, so that a later read of it need
// not wait on memory.
//
//go:noescape
func prefetch(v []float32)

// prefetchU32 is prefetch for a slice of uint32.
//
//go:noescape
func prefetchU32(v []uint32)

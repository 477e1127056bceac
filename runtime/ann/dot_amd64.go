//go:build amd64 && !purego

package ann

// useAVX2 reports whether the CPU and OS support AVX2 and FMA, which the
// assembly dot product needs.
var useAVX2 = detectAVX2()

func detectAVX2() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	const (
		fma     = 1 << 12
		osxsave = 1 << 27
		avx     = 1 << 28
	)
	if ecx1&(fma|osxsave|avx) != fma|osxsave|avx {
		return false
	}
	if xcr0, _ := xgetbv(); xcr0&6 != 6 { // the OS saves XMM and YMM state
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0 // AVX2
}

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

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)

// prefetch starts loading v into the cache, so that a later read of it need
// not wait on memory.
//
//go:noescape
func prefetch(v []float32)

// prefetchU32 is prefetch for a slice of uint32.
//
//go:noescape
func prefetchU32(v []uint32)

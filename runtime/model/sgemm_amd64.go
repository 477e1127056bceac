//go:build amd64 && !purego

package model

// useKernel reports whether layers run on the assembly kernel; it is set once
// from the CPU's features. Networks built while it is false use gonum (tests
// clear it to check one path against the other).
var useKernel = hasAVX2FMA()

// hasAVX2FMA reports whether the CPU has AVX2 and FMA and the OS saves the
// YMM registers across context switches.
func hasAVX2FMA() bool {
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
	if xcr0, _ := xgetbv(); xcr0&6 != 6 { // XMM and YMM state enabled
		return false
	}
	_, ebx7, _, _ := cpuid(7, 0)
	return ebx7&(1<<5) != 0 // AVX2
}

// sgemmTile computes one kernelRows×panelWidth tile: row r of the tile is
// bias + Σ_k a[r][k]·b[k*panelWidth:], with ReLU if relu, stored at c[r].
// b is one packed panel of k rows, bias holds panelWidth values, each a[r]
// has k readable values (k ≥ 1) and each c[r] panelWidth writable ones.
// Rows may repeat: a tile shorter than kernelRows repeats its last row.
//
//go:noescape
func sgemmTile(k int, a *[kernelRows]*float32, b, bias *float32, c *[kernelRows]*float32, relu bool)

func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

func xgetbv() (eax, edx uint32)

//go:build !amd64 || purego

package ann

// dot returns the inner product of a and b, which must have equal lengths.
func dot(a, b []float32) float32 { return dotGeneric(a, b) }

// prefetch is a no-op where no prefetch instruction is wired up.
func prefetch([]float32) {}

// prefetchU32 is a no-op where no prefetch instruction is wired up.
func prefetchU32([]uint32) {}

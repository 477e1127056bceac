//go:build !amd64 || purego

package model

// useKernel is false: there is no assembly kernel for this platform, and
// layers run on gonum.
var useKernel = false

func sgemmTile(int, *[kernelRows]*float32, *float32, *float32, *[kernelRows]*float32, bool) {
	panic("model: no GEMM kernel on this platform")
}

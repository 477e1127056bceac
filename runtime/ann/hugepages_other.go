//go:build !linux

package ann

// adviseHugePages does nothing where huge pages are not advised.
func adviseHugePages[T any]([]T) {}

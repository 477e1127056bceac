//go:build !unix

package store

import "os"

// lockLog does nothing where flock(2) is missing: the caller must ensure
// one process per state directory.
func lockLog(*os.File) error { return nil }

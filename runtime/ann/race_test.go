//go:build race

package ann

// raceEnabled is set when the race detector, which slows the graph build
// some fifty-fold, is on: the recall test then uses a smaller set.
const raceEnabled = true

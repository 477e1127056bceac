/*
Copyright 2026 The RecPipeline Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package rectrain

import (
	"encoding/gob"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/recpipeline/recpipeline/runtime/internal/training/rectrain/nn"
)

// ErrStopped is returned by Train when Options.StopAfter ended the run
// early; the checkpoint holds the state to resume from.
var ErrStopped = errors.New("training stopped by StopAfter; resume from the checkpoint")

// CheckpointFile is the file a checkpoint directory holds.
const CheckpointFile = "checkpoint.gob"

const checkpointFormat = "recpipeline.rectrain-checkpoint/1"

// Training runs its models one after the other, in this order, each for
// its Options.stageEpochs; a checkpoint names a position in this schedule.
var stages = []string{"two-tower", "mtml", "first-stage"}

// stageEpochs is the number of epochs of stage: FirstStageEpochs for the
// first stage, Epochs for the others.
func (o Options) stageEpochs(stage int) int {
	if stages[stage] == "first-stage" {
		return o.FirstStageEpochs
	}
	return o.Epochs
}

// checkpoint is the state after an epoch: enough to continue the run as if
// it had not stopped.
type checkpoint struct {
	Format string
	// Fingerprint identifies the options and data the run was started
	// with; a resume with others is refused.
	Fingerprint string
	// Stage indexes stages; Epoch is the number of its epochs done.
	Stage, Epoch int
	// Params are the parameters of every model started so far, by stage
	// name, in the models' Params order.
	Params map[string][][]float64
	// AdamM, AdamV and AdamT are the optimiser state of Stage's model.
	AdamM, AdamV [][]float64
	AdamT        int
	// RNG is Stage's shuffling generator, binary-marshalled.
	RNG  []byte
	Loss map[string]float64
}

// fingerprint names what must not change between a run and its resume.
func fingerprint(d *Data, o Options, weights []float64) string {
	return fmt.Sprintf("epochs=%d/%d seed=%d dim=%d tower=%d ids=%d fs=%d/%d hidden=%v batch=%d lr=%g weights=%v users=%d items=%d imps=%d train=%d",
		o.Epochs, o.FirstStageEpochs, o.Seed, o.Dim, o.TowerHidden, o.IDDim, o.FirstStageDim, o.FirstStageHidden, o.Hidden, o.Batch, o.LR, weights,
		len(d.UserIDs), len(d.ItemIDs), len(d.Imps), d.TrainN)
}

// schedule tracks a run's position, restores a stage from a loaded
// checkpoint and saves one after every epoch.
type schedule struct {
	o      Options
	res    *Result
	fp     string
	loaded *checkpoint // nil for a fresh run
}

func newSchedule(d *Data, o Options, res *Result) (*schedule, error) {
	s := &schedule{o: o, res: res, fp: fingerprint(d, o, res.weights)}
	if !o.Resume {
		return s, nil
	}
	if o.Checkpoint == "" {
		return nil, fmt.Errorf("resume needs a checkpoint directory")
	}
	path := filepath.Join(o.Checkpoint, CheckpointFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(o.Progress, "no checkpoint in %s: starting from the beginning\n", o.Checkpoint)
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open the checkpoint: %w", err)
	}
	defer f.Close()
	var ck checkpoint
	if err := gob.NewDecoder(f).Decode(&ck); err != nil {
		return nil, fmt.Errorf("failed to read the checkpoint %s: %w", path, err)
	}
	if ck.Format != checkpointFormat {
		return nil, fmt.Errorf("%s is format %q, want %q", path, ck.Format, checkpointFormat)
	}
	if ck.Fingerprint != s.fp {
		return nil, fmt.Errorf("the checkpoint %s was made with other options or data:\n  checkpoint %s\n  this run   %s", path, ck.Fingerprint, s.fp)
	}
	if ck.Stage < 0 || ck.Stage >= len(stages) || ck.Epoch < 0 || ck.Epoch > o.stageEpochs(ck.Stage) {
		return nil, fmt.Errorf("the checkpoint %s is at stage %d epoch %d, outside the schedule", path, ck.Stage, ck.Epoch)
	}
	fmt.Fprintf(o.Progress, "resuming from %s: %s, %d of %d epochs done\n", path, stages[ck.Stage], ck.Epoch, o.stageEpochs(ck.Stage))
	s.loaded = &ck
	return s, nil
}

// begin restores stage's model, optimiser and generator from the loaded
// checkpoint when it reached the stage, and returns the first epoch to run
// (its stageEpochs when the stage is complete).
func (s *schedule) begin(stage int, params [][]float64, opt *nn.Adam, pcg *rand.PCG) (int, error) {
	ck := s.loaded
	if ck == nil || ck.Stage < stage {
		return 0, nil
	}
	name := stages[stage]
	saved := ck.Params[name]
	if len(saved) != len(params) {
		return 0, fmt.Errorf("the checkpoint's %s has %d tensors, want %d", name, len(saved), len(params))
	}
	for i, p := range params {
		if len(saved[i]) != len(p) {
			return 0, fmt.Errorf("the checkpoint's %s tensor %d has %d values, want %d", name, i, len(saved[i]), len(p))
		}
		copy(p, saved[i])
	}
	if l, ok := ck.Loss[name]; ok {
		s.res.Loss[name] = l
	}
	if ck.Stage > stage {
		return s.o.stageEpochs(stage), nil
	}
	if err := opt.SetState(ck.AdamM, ck.AdamV, ck.AdamT); err != nil {
		return 0, fmt.Errorf("failed to restore the %s optimiser: %w", name, err)
	}
	if err := pcg.UnmarshalBinary(ck.RNG); err != nil {
		return 0, fmt.Errorf("failed to restore the %s generator: %w", name, err)
	}
	return ck.Epoch, nil
}

// params returns the parameters of every model started so far.
func (s *schedule) params() map[string][][]float64 {
	out := map[string][][]float64{}
	if t := s.res.TwoTower; t != nil {
		out[stages[0]] = t.Params()
	}
	if m := s.res.MTML; m != nil {
		out[stages[1]] = m.Params()
	}
	if t := s.res.FirstStage; t != nil {
		out[stages[2]] = t.Params()
	}
	return out
}

// end records that epoch (0-based) of stage is done: it saves the
// checkpoint when one is configured, and returns ErrStopped when the run
// has reached Options.StopAfter.
func (s *schedule) end(stage, epoch int, opt *nn.Adam, pcg *rand.PCG) error {
	if s.o.Checkpoint != "" {
		m, v, t := opt.State()
		rng, err := pcg.MarshalBinary()
		if err != nil {
			return err
		}
		ck := checkpoint{Format: checkpointFormat, Fingerprint: s.fp, Stage: stage, Epoch: epoch + 1,
			Params: s.params(), AdamM: m, AdamV: v, AdamT: t, RNG: rng, Loss: s.res.Loss}
		if err := writeCheckpoint(s.o.Checkpoint, &ck); err != nil {
			return err
		}
	}
	done := epoch + 1
	for st := range stage {
		done += s.o.stageEpochs(st)
	}
	if s.o.StopAfter > 0 && done >= s.o.StopAfter {
		return ErrStopped
	}
	return nil
}

// writeCheckpoint replaces dir's checkpoint atomically: a crash leaves the
// previous one or the new one, never a torn file.
func writeCheckpoint(dir string, ck *checkpoint) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create the checkpoint directory: %w", err)
	}
	f, err := os.CreateTemp(dir, CheckpointFile+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to write the checkpoint: %w", err)
	}
	err = gob.NewEncoder(f).Encode(ck)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, CheckpointFile))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("failed to write the checkpoint: %w", err)
	}
	return nil
}

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

package model

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// outputs runs every network of a over fixed inputs and returns the results,
// for comparing two artifacts bit for bit.
func outputs(t *testing.T, a *Artifact) []float32 {
	t.Helper()
	ws := &Workspace{}
	var out []float32
	switch {
	case a.MLP != nil:
		g := a.MLP.Forward(randInput(9, 33, a.MLP.In(), a.MLP.In()), ws)
		out = append(out, g.Data...)
	case a.TwoTower != nil:
		u := a.TwoTower.UserEmbeddings(randInput(9, 3, a.TwoTower.User.In(), a.TwoTower.User.In()), ws)
		user := slices.Clone(u.Data[:a.TwoTower.Dim])
		out = append(out, user...)
		s := make([]float32, 40)
		a.TwoTower.Score(user, randInput(8, 40, a.TwoTower.Item.In(), a.TwoTower.Item.In()), s, ws)
		out = append(out, s...)
	case a.MTML != nil:
		p := make([]float32, 50*len(a.MTML.Heads()))
		a.MTML.Predict(randInput(9, 50, a.MTML.In(), a.MTML.In()), p, ws)
		out = append(out, p...)
	default:
		t.Fatal("artifact has no network")
	}
	return out
}

func sameBits(a, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tests := map[string]*Manifest{
		"MLP":                   mlpManifest(net(6, LayerSpec{10, GELU}, LayerSpec{1, Sigmoid})),
		"TwoTower":              twoTowerManifest(false),
		"TwoTower (normalized)": twoTowerManifest(true),
		"MTML":                  mtmlManifest(),
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			m.FormatVersion = 0 // Save fills it in.
			tensors := randTensors(m, 21)
			orig := *m
			dir := filepath.Join(t.TempDir(), "artifact")
			if err := Save(dir, m, tensors); err != nil {
				t.Fatalf("Save: %v", err)
			}
			if !reflect.DeepEqual(*m, orig) {
				t.Fatal("Save modified the caller's manifest")
			}
			archive := filepath.Join(t.TempDir(), "model.tar.gz")
			var buf bytes.Buffer
			if err := WriteArchive(&buf, m, tensors); err != nil {
				t.Fatalf("WriteArchive: %v", err)
			}
			if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}

			mc := *m
			mc.FormatVersion = FormatVersion
			want, err := New(&mc, tensors)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			wantOut := outputs(t, want)
			for _, uri := range []string{dir, "file://" + dir, archive, "file://" + archive} {
				got, err := Load(context.Background(), uri)
				if err != nil {
					t.Fatalf("Load(%s): %v", uri, err)
				}
				if !sameBits(outputs(t, got), wantOut) {
					t.Fatalf("Load(%s): outputs differ from the saved model's", uri)
				}
				gm := got.Manifest
				if gm.FormatVersion != FormatVersion || !checksumRE.MatchString(gm.Checksum) {
					t.Fatalf("Load(%s): manifest has formatVersion %d, checksum %q", uri, gm.FormatVersion, gm.Checksum)
				}
				gm.Checksum, gm.FormatVersion = "", 0
				if !reflect.DeepEqual(gm, orig) {
					t.Fatalf("Load(%s): manifest\n%+v\nwant\n%+v", uri, gm, orig)
				}
			}
		})
	}
}

func TestSaveIsDeterministic(t *testing.T) {
	m := mtmlManifest()
	tensors := randTensors(m, 3)
	d1, d2 := t.TempDir(), t.TempDir()
	if err := Save(d1, m, tensors); err != nil {
		t.Fatal(err)
	}
	if err := Save(d2, m, tensors); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ManifestFile, WeightsFile} {
		a, _ := os.ReadFile(filepath.Join(d1, f))
		b, _ := os.ReadFile(filepath.Join(d2, f))
		if !bytes.Equal(a, b) {
			t.Errorf("two saves of the same model wrote different %s", f)
		}
	}
}

func TestSaveRefusesInvalidModel(t *testing.T) {
	tests := map[string]struct {
		mutate  func(m *Manifest, tensors map[string]Tensor)
		wantErr string
	}{
		"NaN weight": {
			mutate:  func(_ *Manifest, ts map[string]Tensor) { ts["bottom.0.weight"].Data[5] = float32(math.NaN()) },
			wantErr: `tensor "bottom.0.weight": element 5 is NaN`,
		},
		"bias of the wrong width": {
			mutate: func(_ *Manifest, ts map[string]Tensor) {
				ts["bottom.1.bias"] = Tensor{Shape: []int{15}, Data: make([]float32, 15)}
			},
			wantErr: `tensor "bottom.1.bias" has shape [15], manifest requires [16]`,
		},
		"format version from the future": {
			mutate:  func(m *Manifest, _ map[string]Tensor) { m.FormatVersion = FormatVersion + 1 },
			wantErr: "unsupported formatVersion 2",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			m := mtmlManifest()
			tensors := randTensors(m, 4)
			tc.mutate(m, tensors)
			dir := filepath.Join(t.TempDir(), "artifact")
			err := Save(dir, m, tensors)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Save error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Save wrote %s despite refusing the model", dir)
			}
		})
	}
}

func TestLoadRefusesInvalidArtifact(t *testing.T) {
	// Each case builds the bytes of manifest.json and model.safetensors from
	// a valid MTML model; rawArtifact keeps the checksum right so that the
	// problem under test is the one found.
	valid := func(t *testing.T) (*Manifest, map[string]Tensor) {
		m := mtmlManifest()
		return m, randTensors(m, 5)
	}
	validRaw := func(t *testing.T) (manifest, weights []byte) {
		m, ts := valid(t)
		return rawArtifact(t, m, ts)
	}
	tests := map[string]struct {
		build   func(t *testing.T) (manifest, weights []byte)
		wantErr string
	}{
		"weights byte flipped": {
			build: func(t *testing.T) ([]byte, []byte) {
				mb, wb := validRaw(t)
				wb[len(wb)-3] ^= 0x40
				return mb, wb
			},
			wantErr: "checksum mismatch",
		},
		"weights truncated": {
			build: func(t *testing.T) ([]byte, []byte) {
				mb, wb := validRaw(t)
				return mb, wb[:len(wb)-100]
			},
			wantErr: "checksum mismatch",
		},
		"weights truncated, checksum of the truncated file": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				_, wb := rawArtifact(t, m, ts)
				wb = wb[:len(wb)-100]
				m.Checksum = Checksum(wb)
				mb := encodeManifest(t, m)
				return mb, wb
			},
			wantErr: "(truncated file?)",
		},
		"checksum not sha256": {
			build: func(t *testing.T) ([]byte, []byte) {
				mb, wb := validRaw(t)
				return bytes.Replace(mb, []byte(`"sha256:`), []byte(`"md5:`), 1), wb
			},
			wantErr: `checksum "md5:`,
		},
		"weight of the wrong shape": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				ts["bottom.1.weight"] = Tensor{Shape: []int{16, 32}, Data: ts["bottom.1.weight"].Data}
				return rawArtifact(t, m, ts)
			},
			wantErr: `tensor "bottom.1.weight" has shape [16 32], manifest requires [32 16]`,
		},
		"NaN weight": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				ts["heads.weight"].Data[3] = float32(math.NaN())
				return rawArtifact(t, m, ts)
			},
			wantErr: `tensor "heads.weight": element 3 is NaN`,
		},
		"infinite bias": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				ts["bottom.0.bias"].Data[0] = float32(math.Inf(1))
				return rawArtifact(t, m, ts)
			},
			wantErr: `tensor "bottom.0.bias": element 0 is +Inf`,
		},
		"missing tensor": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				delete(ts, "heads.bias")
				return rawArtifact(t, m, ts)
			},
			wantErr: `tensor "heads.bias" is missing`,
		},
		"tensor the manifest does not use": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				ts["bottom.2.weight"] = Tensor{Shape: []int{1}, Data: []float32{1}}
				return rawArtifact(t, m, ts)
			},
			wantErr: `tensor "bottom.2.weight" is not used by the manifest`,
		},
		"unknown activation": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.Networks[NetBottom].Layers[1].Activation = "relux"
				return rawArtifact(t, m, ts)
			},
			wantErr: `networks["bottom"].layers[1].activation: unknown activation "relux"`,
		},
		"format version from the future": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.FormatVersion = 2
				return rawArtifact(t, m, ts)
			},
			wantErr: "unsupported formatVersion 2",
		},
		"format version missing": {
			build: func(t *testing.T) ([]byte, []byte) {
				mb, wb := validRaw(t)
				return bytes.Replace(mb, []byte(`"formatVersion":1,`), nil, 1), wb
			},
			wantErr: "formatVersion is missing",
		},
		"misspelt manifest field": {
			build: func(t *testing.T) ([]byte, []byte) {
				mb, wb := validRaw(t)
				return bytes.Replace(mb, []byte(`"heads"`), []byte(`"haeds"`), 1), wb
			},
			wantErr: `unknown field "haeds"`,
		},
		"manifest not JSON": {
			build: func(t *testing.T) ([]byte, []byte) {
				_, wb := validRaw(t)
				return []byte("kind: MTML\n"), wb
			},
			wantErr: "failed to decode manifest.json",
		},
		"unknown kind": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.Kind = "DLRM"
				return rawArtifact(t, m, ts)
			},
			wantErr: `unknown kind "DLRM"`,
		},
		"MTML without heads": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.Heads = nil
				return rawArtifact(t, m, ts)
			},
			wantErr: "requires at least one entry in heads",
		},
		"head listed twice": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.Heads = []string{"click", "like", "click", "see_less"}
				return rawArtifact(t, m, ts)
			},
			wantErr: `heads[2] "click" is listed twice`,
		},
		"feature block of width zero": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				m.Networks[NetBottom].Input[2].Width = 0
				return rawArtifact(t, m, ts)
			},
			wantErr: `networks["bottom"].input[2] (item_features) has width 0`,
		},
		"towers of different widths": {
			build: func(t *testing.T) ([]byte, []byte) {
				m := twoTowerManifest(false)
				ts := randTensors(m, 1)
				m.Networks[NetItem].Layers[1].Out = 9
				return rawArtifact(t, m, ts)
			},
			wantErr: "user tower output width 8 differs from item tower output width 9",
		},
		"safetensors header length beyond the file": {
			build: func(t *testing.T) ([]byte, []byte) {
				m, ts := valid(t)
				_, wb := rawArtifact(t, m, ts)
				binary.LittleEndian.PutUint64(wb, uint64(len(wb)))
				m.Checksum = Checksum(wb)
				mb := encodeManifest(t, m)
				return mb, wb
			},
			wantErr: "exceeds the",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			mb, wb := tc.build(t)
			_, err := Parse(mb, wb)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Parse error = %v\nwant ErrInvalid containing %q", err, tc.wantErr)
			}
			// The same refusal through the directory loader.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ManifestFile), mb, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, WeightsFile), wb, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Load(context.Background(), dir); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load error = %v\nwant ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestLoadMissingFiles(t *testing.T) {
	dir := t.TempDir()
	m := mtmlManifest()
	if err := Save(dir, m, randTensors(m, 1)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, WeightsFile))
	if _, err := Load(context.Background(), dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a directory without weights: error = %v, want not-exist", err)
	}
	if _, err := Load(context.Background(), filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing path: error = %v, want not-exist", err)
	}
}

func TestNewMLPRefusesMismatchedLayers(t *testing.T) {
	w := func(r, c int) blas32.General {
		return blas32.General{Rows: r, Cols: c, Stride: c, Data: make([]float32, r*c)}
	}
	tests := map[string]struct {
		layers  []Layer
		wantErr string
	}{
		"no layers":           {nil, "no layers"},
		"bias too short":      {[]Layer{{W: w(3, 4), B: make([]float32, 3), Act: ReLU}}, "bias has 3 values for 4 outputs"},
		"chain breaks":        {[]Layer{{W: w(3, 4), B: make([]float32, 4), Act: ReLU}, {W: w(5, 2), B: make([]float32, 2), Act: ReLU}}, "layer 1 takes 5 inputs but layer 0 gives 4"},
		"unknown activation":  {[]Layer{{W: w(3, 4), B: make([]float32, 4), Act: "swish"}}, `unknown activation "swish"`},
		"data shorter than W": {[]Layer{{W: blas32.General{Rows: 3, Cols: 4, Stride: 4, Data: make([]float32, 11)}, B: make([]float32, 4), Act: ReLU}}, "malformed 3×4 weight matrix"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewMLP(tc.layers)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("NewMLP error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

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
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestToBF16Rounds(t *testing.T) {
	tests := map[string]struct {
		in   float32
		want uint16
	}{
		"one":                      {1, 0x3f80},
		"exact":                    {-2.5, 0xc020},
		"below half rounds down":   {math.Float32frombits(0x3f807fff), 0x3f80},
		"above half rounds up":     {math.Float32frombits(0x3f808001), 0x3f81},
		"tie to even stays":        {math.Float32frombits(0x3f808000), 0x3f80},
		"tie to even goes up":      {math.Float32frombits(0x3f818000), 0x3f82},
		"carry into the exponent":  {math.Float32frombits(0x3fffffff), 0x4000},
		"largest float to +Inf":    {math.MaxFloat32, 0x7f80},
		"infinity":                 {float32(math.Inf(-1)), 0xff80},
		"subnormal to signed zero": {-math.SmallestNonzeroFloat32, 0x8000},
		"zero":                     {0, 0},
	}
	for name, tc := range tests {
		if got := toBF16(tc.in); got != tc.want {
			t.Errorf("%s: toBF16(%#08x) = %#04x, want %#04x", name, math.Float32bits(tc.in), got, tc.want)
		}
	}
	if nan := toBF16(math.Float32frombits(0x7f800001)); nan&0x7f80 != 0x7f80 || nan&0x7f == 0 {
		t.Errorf("toBF16(signalling NaN) = %#04x, want a NaN", nan)
	}
}

// TestToBF16KernelMatchesGo checks the vector conversion against toBF16,
// bit for bit, on values of every magnitude, ties and specials included.
func TestToBF16KernelMatchesGo(t *testing.T) {
	if !BFloat16Supported() {
		t.Skip("no bfloat16 kernel on this machine")
	}
	r := rand.New(rand.NewPCG(1, 2))
	src := make([]float32, 4096)
	for i := range src {
		switch i % 4 {
		case 0:
			src[i] = math.Float32frombits(r.Uint32()) // any bits: NaNs, subnormals, infinities
		case 1:
			src[i] = math.Float32frombits(r.Uint32()&^0xffff | 0x8000) // a tie
		default:
			src[i] = float32(r.NormFloat64())
		}
	}
	src[5], src[6] = float32(math.Inf(1)), math.MaxFloat32
	got := make([]uint16, len(src))
	toBF16x16(&got[0], &src[0], len(src))
	for i, v := range src {
		want := toBF16(v)
		if math.IsNaN(float64(v)) {
			if got[i]&0x7f80 != 0x7f80 || got[i]&0x7f == 0 {
				t.Fatalf("kernel rounded NaN %#08x to %#04x, not a NaN", math.Float32bits(v), got[i])
			}
			continue
		}
		if got[i] != want {
			t.Fatalf("kernel rounded %#08x to %#04x, toBF16 to %#04x", math.Float32bits(v), got[i], want)
		}
	}
}

// TestSplitWithPrecision checks that a split network in bfloat16 predicts
// what the float32 one does to within bfloat16's rounding, that the network
// it was made from keeps float32, and that Float32 gives float32 back.
func TestSplitWithPrecision(t *testing.T) {
	m := prodMTMLManifest()
	a, err := New(m, randTensors(m, 5))
	if err != nil {
		t.Fatal(err)
	}
	constant := make([]int, 128)
	for i := range constant {
		constant[i] = i
	}
	f32, err := a.MTML.Split(constant)
	if err != nil {
		t.Fatal(err)
	}
	if !BFloat16Supported() {
		if _, err := f32.WithPrecision(BFloat16); err == nil {
			t.Fatal("WithPrecision(BFloat16) succeeded on a CPU without bfloat16")
		}
		t.Skip("no bfloat16 kernel on this machine")
	}
	bf16, err := f32.WithPrecision(BFloat16)
	if err != nil {
		t.Fatal(err)
	}
	back, err := bf16.WithPrecision(Float32)
	if err != nil {
		t.Fatal(err)
	}
	const batch = 300
	shared := randInput(7, 1, len(constant), len(constant)).Data
	in := randInput(6, batch, f32.In(), f32.In())
	predict := func(s *SplitMTML) []float32 {
		out := make([]float32, batch*len(m.Heads))
		s.Predict(shared, in, out, &Workspace{})
		return out
	}
	want := predict(f32)
	got := predict(bf16)
	var worst float64
	for i := range want {
		worst = max(worst, math.Abs(float64(got[i]-want[i])))
	}
	// Random weights of unit scale give logits in the tens, on which the
	// inputs' 2⁻⁸ rounding moves a probability by up to a few hundredths.
	if worst > 0.05 || worst == 0 {
		t.Errorf("bfloat16 probabilities differ from float32 by at most %.3g, want within (0, 0.05]", worst)
	}
	t.Logf("largest difference in probability: %.3g", worst)
	for name, s := range map[string]*SplitMTML{"the network split": f32, "back to float32": back} {
		if again := predict(s); !slices.Equal(again, want) {
			t.Errorf("%s does not predict in float32 any more", name)
		}
	}
}

// TestBF16KernelIsGenerated checks that bf16_amd64.s is what gen_bf16.go
// writes: the encoded instructions are not to be edited by hand.
func TestBF16KernelIsGenerated(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the generator")
	}
	want, err := exec.Command("go", "run", "gen_bf16.go").Output()
	if err != nil {
		t.Fatalf("go run gen_bf16.go: %v", err)
	}
	got, err := os.ReadFile("bf16_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("bf16_amd64.s differs from what gen_bf16.go writes: run go run gen_bf16.go > bf16_amd64.s")
	}
}

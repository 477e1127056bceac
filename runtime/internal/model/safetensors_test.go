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
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// stFile assembles a safetensors file from a header and data section.
func stFile(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func le32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func le16(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

func TestParseSafetensorsDTypes(t *testing.T) {
	tests := map[string]struct {
		file []byte
		want []float32
	}{
		"F32 with padded header and metadata": {
			file: stFile(`{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `, le32(1.5, -2)),
			want: []float32{1.5, -2},
		},
		"F16 normal, max, subnormal, zero, infinity": {
			file: stFile(`{"w":{"dtype":"F16","shape":[6],"data_offsets":[0,12]}}`, le16(0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000, 0x7C00)),
			want: []float32{1, -2, 65504, 1.0 / (1 << 24), float32(math.Copysign(0, -1)), float32(math.Inf(1))},
		},
		"BF16": {
			file: stFile(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, le16(0x3F80, 0xC040)),
			want: []float32{1, -3},
		},
		"scalar": {
			file: stFile(`{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, le32(7)),
			want: []float32{7},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ts, err := ParseSafetensors(tc.file)
			if err != nil {
				t.Fatalf("ParseSafetensors: %v", err)
			}
			got := ts["w"].Data
			if !sameBits(got, tc.want) {
				t.Fatalf("values = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseSafetensorsUnalignedBuffer(t *testing.T) {
	file := stFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}`, le32(1, 2, 3))
	buf := make([]byte, len(file)+1)
	copy(buf[1:], file) // misaligns the data section
	ts, err := ParseSafetensors(buf[1:])
	if err != nil {
		t.Fatal(err)
	}
	if got := ts["w"].Data; !slices.Equal(got, []float32{1, 2, 3}) {
		t.Fatalf("values = %v, want [1 2 3]", got)
	}
}

func TestParseSafetensorsRefusesMalformed(t *testing.T) {
	tests := map[string]struct {
		file    []byte
		wantErr string
	}{
		"empty file":               {nil, "shorter than the 8-byte header length"},
		"header longer than file":  {append(binary.LittleEndian.AppendUint64(nil, 50), `{}`...), "exceeds the 2 bytes after it"},
		"header over the limit":    {binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes+1), "exceeds the limit"},
		"header not an object":     {stFile(`[1,2]`, nil), "does not start with '{'"},
		"header not JSON":          {stFile(`{"w":`, nil), "failed to decode header JSON"},
		"trailing bytes in header": {stFile(`{} x`, nil), "trailing bytes"},
		"unsupported dtype":        {stFile(`{"w":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, make([]byte, 8)), `unsupported dtype "I64"`},
		"missing shape":            {stFile(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, make([]byte, 4)), "missing shape"},
		"negative dimension":       {stFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, make([]byte, 4)), "negative dimension"},
		"unknown entry field":      {stFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offset":3}}`, make([]byte, 4)), `unknown field "offset"`},
		"offsets past the data":    {stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 4)), "outside the 4-byte data section"},
		"offsets reversed":         {stFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}`, make([]byte, 4)), "outside the"},
		"shape disagrees with size": {stFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)),
			"shape [3] of F32 needs 12 bytes but data_offsets [0, 8] hold 8"},
		"shape overflows": {stFile(`{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}`, make([]byte, 4)),
			"has too many elements"},
		"overlapping tensors": {stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)),
			"overlap"},
		"hole between tensors": {stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, make([]byte, 12)),
			"data bytes [4, 8) belong to no tensor"},
		"trailing data": {stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, make([]byte, 9)),
			"data bytes [4, 9) belong to no tensor"},
		"metadata not strings": {stFile(`{"__metadata__":{"epoch":3}}`, nil), "must map strings to strings"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSafetensors(tc.file)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestWriteSafetensorsRoundTrip(t *testing.T) {
	in := map[string]Tensor{
		"a.0.weight": {Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, -6}},
		"a.0.bias":   {Shape: []int{3}, Data: []float32{0.5, 0, -0.25}},
		"scalar":     {Shape: []int{}, Data: []float32{9}},
		"empty":      {Shape: []int{0, 4}, Data: []float32{}},
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in); err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(buf.Bytes())
	if (8+n)%8 != 0 {
		t.Errorf("data section starts at byte %d, not 8-aligned", 8+n)
	}
	out, err := ParseSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("read %d tensors, wrote %d", len(out), len(in))
	}
	for name, want := range in {
		got := out[name]
		if !slices.Equal(got.Shape, want.Shape) || !slices.Equal(got.Data, want.Data) {
			t.Errorf("%s: read %v %v, wrote %v %v", name, got.Shape, got.Data, want.Shape, want.Data)
		}
	}
}

func TestWriteSafetensorsRefusesInconsistentTensor(t *testing.T) {
	err := WriteSafetensors(&bytes.Buffer{}, map[string]Tensor{"w": {Shape: []int{2, 2}, Data: []float32{1, 2, 3}}})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `tensor "w": shape [2 2] has 4 elements but data has 3`) {
		t.Fatalf("error = %v", err)
	}
}

// FuzzParseSafetensors checks that no input makes the parser panic, and that
// whatever it accepts is consistent and survives a write/read round trip.
func FuzzParseSafetensors(f *testing.F) {
	var valid bytes.Buffer
	if err := WriteSafetensors(&valid, map[string]Tensor{
		"w": {Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		"b": {Shape: []int{2}, Data: []float32{-1, 1}},
	}); err != nil {
		f.Fatal(err)
	}
	f.Add(valid.Bytes())
	f.Add(valid.Bytes()[:len(valid.Bytes())-3])
	f.Add(valid.Bytes()[:12])
	f.Add(stFile(`{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, le16(0x3C00, 0x7E00)))
	f.Add(stFile(`{"w":{"dtype":"BF16","shape":[1,0,3],"data_offsets":[0,0]}}`, nil))
	f.Add(stFile(`{"w":{"dtype":"F32","shape":[9223372036854775807,2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, err := ParseSafetensors(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for name, tensor := range ts {
			if tensor.NumElements() != len(tensor.Data) {
				t.Fatalf("tensor %q: shape %v but %d values", name, tensor.Shape, len(tensor.Data))
			}
		}
		var buf bytes.Buffer
		if err := WriteSafetensors(&buf, ts); err != nil {
			t.Fatalf("accepted tensors cannot be written: %v", err)
		}
		again, err := ParseSafetensors(buf.Bytes())
		if err != nil {
			t.Fatalf("written tensors cannot be read: %v", err)
		}
		for name, tensor := range ts {
			if !slices.Equal(again[name].Shape, tensor.Shape) || !sameBits(again[name].Data, tensor.Data) {
				t.Fatalf("tensor %q changed in a write/read round trip", name)
			}
		}
	})
}

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

// The safetensors reader and writer are written here rather than taken from a
// library: the format is small (a length, a JSON header, raw little-endian
// data), and the serving runtime needs strict validation of every header field
// against the file, F16/BF16 widening, and float32 tensors that alias the file
// buffer instead of being copied, which a general-purpose library does not
// give together.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"unsafe"
)

// DType is the element type of a tensor in a safetensors file.
type DType string

// Element types read by ParseSafetensors. F16 and BF16 are widened to float32
// on read; WriteSafetensors always writes F32.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
)

func (d DType) size() int {
	switch d {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

// MaxHeaderBytes bounds the JSON header of a safetensors file.
const MaxHeaderBytes = 100 << 20

// metadataKey is the optional string→string map in a safetensors header.
const metadataKey = "__metadata__"

// Tensor is a dense, row-major float32 tensor.
type Tensor struct {
	// Shape lists the dimensions, outermost first. An empty shape is a scalar.
	Shape []int
	// Data holds the elements; len(Data) equals the product of Shape.
	Data []float32
}

// NumElements returns the product of the dimensions of t.
func (t Tensor) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type headerEntry struct {
	DType       DType     `json:"dtype"`
	Shape       []int64   `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// ParseSafetensors parses a safetensors file held in data and returns its
// tensors by name as float32.
//
// It checks everything the header claims against the file: the header length,
// that the header is one JSON object (optionally padded with spaces), each
// tensor's dtype (F32, F16 or BF16), that its byte range lies inside the data
// section and matches its shape, and that the ranges cover the data section
// exactly, without overlaps or holes. The optional __metadata__ entry must map
// strings to strings and is otherwise ignored. A malformed file yields an error
// wrapping ErrInvalid; ParseSafetensors never panics.
//
// F32 tensors may alias data when the host is little-endian and the bytes are
// 4-byte aligned; the caller must not modify data afterwards.
func ParseSafetensors(data []byte) (map[string]Tensor, error) {
	header, body, err := splitSafetensors(data)
	if err != nil {
		return nil, err
	}
	raw, err := decodeHeader(header)
	if err != nil {
		return nil, err
	}
	spans := make([]tensorSpan, 0, len(raw))
	entries := make(map[string]headerEntry, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
			var md map[string]string
			if err := json.Unmarshal(msg, &md); err != nil {
				return nil, invalidf("safetensors: %s must map strings to strings: %v", metadataKey, err)
			}
			continue
		}
		e, err := parseHeaderEntry(name, msg, uint64(len(body)))
		if err != nil {
			return nil, err
		}
		entries[name] = e
		spans = append(spans, tensorSpan{name, e.DataOffsets[0], e.DataOffsets[1]})
	}
	if err := checkCoverage(spans, uint64(len(body))); err != nil {
		return nil, err
	}

	out := make(map[string]Tensor, len(entries))
	for name, e := range entries {
		shape := make([]int, len(e.Shape))
		for i, d := range e.Shape {
			shape[i] = int(d)
		}
		b := body[e.DataOffsets[0]:e.DataOffsets[1]]
		out[name] = Tensor{Shape: shape, Data: decode(e.DType, b)}
	}
	return out, nil
}

// splitSafetensors checks the 8-byte header length of data and returns the
// header and the data section that follows it.
func splitSafetensors(data []byte) (header, body []byte, err error) {
	if len(data) < 8 {
		return nil, nil, invalidf("safetensors: file is %d bytes, shorter than the 8-byte header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderBytes {
		return nil, nil, invalidf("safetensors: header length %d exceeds the limit of %d bytes", n, MaxHeaderBytes)
	}
	if n > uint64(len(data)-8) {
		return nil, nil, invalidf("safetensors: header length %d exceeds the %d bytes after it (truncated file?)", n, len(data)-8)
	}
	return data[8 : 8+n], data[8+n:], nil
}

// decodeHeader decodes the header as one JSON object, optionally padded with
// spaces, into its raw entries.
func decodeHeader(header []byte) (map[string]json.RawMessage, error) {
	if len(header) == 0 || header[0] != '{' {
		return nil, invalidf("safetensors: header does not start with '{'")
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(header))
	if err := dec.Decode(&raw); err != nil {
		return nil, invalidf("safetensors: failed to decode header JSON: %v", err)
	}
	if rest := header[dec.InputOffset():]; len(bytes.Trim(rest, " ")) != 0 {
		return nil, invalidf("safetensors: header has trailing bytes after the JSON object")
	}
	return raw, nil
}

// parseHeaderEntry decodes the header entry of tensor name and checks its
// dtype, and that its byte range lies inside a data section of bodyLen bytes
// and matches its shape.
func parseHeaderEntry(name string, msg json.RawMessage, bodyLen uint64) (headerEntry, error) {
	if name == "" {
		return headerEntry{}, invalidf("safetensors: tensor with an empty name")
	}
	var e headerEntry
	d := json.NewDecoder(bytes.NewReader(msg))
	d.DisallowUnknownFields()
	if err := d.Decode(&e); err != nil {
		return headerEntry{}, invalidf("safetensors: tensor %q: failed to decode header entry: %v", name, err)
	}
	size := e.DType.size()
	if size == 0 {
		return headerEntry{}, invalidf("safetensors: tensor %q: unsupported dtype %q (want F32, F16 or BF16)", name, e.DType)
	}
	if e.Shape == nil {
		return headerEntry{}, invalidf("safetensors: tensor %q: missing shape", name)
	}
	begin, end := e.DataOffsets[0], e.DataOffsets[1]
	if begin > end || end > bodyLen {
		return headerEntry{}, invalidf("safetensors: tensor %q: data_offsets [%d, %d] outside the %d-byte data section (truncated file?)", name, begin, end, bodyLen)
	}
	count, err := elementCount(name, e.Shape)
	if err != nil {
		return headerEntry{}, err
	}
	if count*uint64(size) != end-begin {
		return headerEntry{}, invalidf("safetensors: tensor %q: shape %v of %s needs %d bytes but data_offsets [%d, %d] hold %d",
			name, e.Shape, e.DType, count*uint64(size), begin, end, end-begin)
	}
	return e, nil
}

// elementCount returns the product of the dimensions of shape, refusing a
// negative dimension or a product that would overflow.
func elementCount(name string, shape []int64) (uint64, error) {
	// Saturate the element count so the product cannot overflow.
	const maxCount = math.MaxInt64 / 8
	count, overflow := uint64(1), false
	for i, dim := range shape {
		if dim < 0 {
			return 0, invalidf("safetensors: tensor %q: negative dimension %d at index %d", name, dim, i)
		}
		if dim != 0 && count > maxCount/uint64(dim) {
			overflow = true
			count = maxCount
			continue
		}
		count *= uint64(dim)
	}
	if count == 0 {
		overflow = false
	}
	if overflow {
		return 0, invalidf("safetensors: tensor %q: shape %v has too many elements", name, shape)
	}
	return count, nil
}

// tensorSpan is the byte range [begin, end) of tensor name in the data section.
type tensorSpan struct {
	name       string
	begin, end uint64
}

// checkCoverage checks that spans cover a data section of bodyLen bytes
// exactly, without overlaps or holes. It sorts spans.
func checkCoverage(spans []tensorSpan, bodyLen uint64) error {
	slices.SortFunc(spans, func(a, b tensorSpan) int {
		if a.begin != b.begin {
			return compareU64(a.begin, b.begin)
		}
		return compareU64(a.end, b.end)
	})
	var pos uint64
	for _, s := range spans {
		if s.begin < pos {
			return invalidf("safetensors: tensor %q: data_offsets [%d, %d] overlap the previous tensor", s.name, s.begin, s.end)
		}
		if s.begin > pos {
			return invalidf("safetensors: data bytes [%d, %d) belong to no tensor", pos, s.begin)
		}
		pos = s.end
	}
	if pos != bodyLen {
		return invalidf("safetensors: data bytes [%d, %d) belong to no tensor", pos, bodyLen)
	}
	return nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// decode converts little-endian bytes of dtype d to float32.
func decode(d DType, b []byte) []float32 {
	switch d {
	case F32:
		n := len(b) / 4
		if n == 0 {
			return []float32{}
		}
		if littleEndian && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
			return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return out
	case F16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = halfToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
		}
		return out
	case BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out
	}
	return nil
}

// halfToFloat32 widens an IEEE 754 binary16 value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant × 2^-24
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	case exp == 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// WriteSafetensors writes tensors to w as a safetensors file of F32 tensors,
// in name order, with the data section aligned to 8 bytes. The output is
// deterministic: the same tensors give the same bytes.
func WriteSafetensors(w io.Writer, tensors map[string]Tensor) error {
	names := make([]string, 0, len(tensors))
	for name, t := range tensors {
		if name == "" || name == metadataKey {
			return invalidf("safetensors: invalid tensor name %q", name)
		}
		for i, d := range t.Shape {
			if d < 0 {
				return invalidf("safetensors: tensor %q: negative dimension %d at index %d", name, d, i)
			}
		}
		if n := t.NumElements(); n != len(t.Data) {
			return invalidf("safetensors: tensor %q: shape %v has %d elements but data has %d", name, t.Shape, n, len(t.Data))
		}
		names = append(names, name)
	}
	slices.Sort(names)

	// Build the header by hand to keep the key order deterministic.
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	var off uint64
	for i, name := range names {
		t := tensors[name]
		if i > 0 {
			hdr.WriteByte(',')
		}
		key, err := json.Marshal(name)
		if err != nil {
			return fmt.Errorf("failed to encode tensor name %q: %w", name, err)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		shapeJSON, err := json.Marshal(shape)
		if err != nil {
			return fmt.Errorf("failed to encode shape of tensor %q: %w", name, err)
		}
		end := off + 4*uint64(len(t.Data))
		fmt.Fprintf(&hdr, `%s:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, key, shapeJSON, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}

	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("failed to write safetensors header length: %w", err)
	}
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return fmt.Errorf("failed to write safetensors header: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for _, name := range names {
		for _, v := range tensors[name].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("failed to write tensor %q: %w", name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("failed to write tensor data: %w", err)
		}
	}
	return nil
}

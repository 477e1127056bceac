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

package ann

// Save and Load keep a built index in a file, so that a process need not
// rebuild the graph at every start (minutes at a million items).
//
// The format is written by hand: no serialisation library knows this
// package's graph, and the graph is held in a few flat slabs, which are
// written as they are in memory and read back straight into the slabs of
// the new index, a large read each, without decoding element by element.
// All numbers are little-endian.
//
//	header, headerSize bytes:
//	  0 magic "RPHNSW\r\n"   8 version u32    12 dim u32     16 metric u32
//	 20 M u32               24 efC u32       28 phi² bits u32
//	 32 seed u64            40 items u64     48 upper-layer slots u64
//	 56 entry point u64     64 digest u64    72 zero        92 CRC-32C of 0..92
//	payload:
//	  vectors as stored (items×dim f16), lift coordinates (items f32),
//	  external ids (items u32), layer-0 lists (items×(2M+1) u32), upper
//	  lists (upper-layer slots u32)
//	trailer: CRC-32C of the payload, u32
//
// The digest is a CRC-64 (ECMA) of the vectors as stored (normalised under
// Cosine, at half precision): Load computes it from the caller's vectors and
// refuses a file built over other ones before reading the payload.
//
// Version 1 held the vectors in float32; its files are refused as another
// version, and the caller builds the index again (`recserve index` writes
// the file anew).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"
	"unsafe"

	"github.com/recpipeline/recpipeline/runtime/internal/vec"
)

// FileVersion is the version of the format Save writes and Load reads.
const FileVersion = 2

const (
	fileMagic  = "RPHNSW\r\n"
	headerSize = 96
	headerCRC  = headerSize - 4
)

// ErrCorrupt is returned, wrapped, by Load for a file that is truncated,
// damaged or not an index.
var ErrCorrupt = errors.New("corrupt index file")

// ErrMismatch is returned, wrapped, by Load for a sound file that was not
// built the way the caller would build the index: another format version,
// dimension, metric, graph options, or other vectors or ids.
var ErrMismatch = errors.New("index file does not match")

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	ecma       = crc64.MakeTable(crc64.ECMA)
	// littleEndian: the slabs are written as they are in memory, which is
	// the format's byte order only on little-endian machines.
	littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1
)

// header is the fixed part of a file.
type header struct {
	version, dim, metric, m, efC, phi2 uint32
	seed, items, upper, entry, digest  uint64
}

func (h *header) encode() []byte {
	b := make([]byte, headerSize)
	le := binary.LittleEndian
	copy(b, fileMagic)
	le.PutUint32(b[8:], h.version)
	le.PutUint32(b[12:], h.dim)
	le.PutUint32(b[16:], h.metric)
	le.PutUint32(b[20:], h.m)
	le.PutUint32(b[24:], h.efC)
	le.PutUint32(b[28:], h.phi2)
	le.PutUint64(b[32:], h.seed)
	le.PutUint64(b[40:], h.items)
	le.PutUint64(b[48:], h.upper)
	le.PutUint64(b[56:], h.entry)
	le.PutUint64(b[64:], h.digest)
	le.PutUint32(b[headerCRC:], crc32.Checksum(b[:headerCRC], castagnoli))
	return b
}

func decodeHeader(b []byte) (header, error) {
	le := binary.LittleEndian
	if string(b[:len(fileMagic)]) != fileMagic {
		return header{}, fmt.Errorf("%w: it does not start as an index file does", ErrCorrupt)
	}
	if crc32.Checksum(b[:headerCRC], castagnoli) != le.Uint32(b[headerCRC:]) {
		return header{}, fmt.Errorf("%w: the header's checksum does not match", ErrCorrupt)
	}
	h := header{
		version: le.Uint32(b[8:]), dim: le.Uint32(b[12:]), metric: le.Uint32(b[16:]),
		m: le.Uint32(b[20:]), efC: le.Uint32(b[24:]), phi2: le.Uint32(b[28:]),
		seed: le.Uint64(b[32:]), items: le.Uint64(b[40:]), upper: le.Uint64(b[48:]),
		entry: le.Uint64(b[56:]), digest: le.Uint64(b[64:]),
	}
	if h.version != FileVersion {
		return header{}, fmt.Errorf("%w: format version %d, this build reads %d", ErrMismatch, h.version, FileVersion)
	}
	return h, nil
}

// bytesOf views s as its bytes in memory.
func bytesOf[T float32 | uint32 | uint16](s []T) []byte {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(s[0])))
}

// segUpperEnd is where the upper-layer lists of a segment's first k nodes
// end in its upper.
func (ix *Index) segUpperEnd(sg *segment, k int) int {
	if k < ix.segNodes() {
		return int(sg.upperAt[k])
	}
	return len(sg.upper)
}

// upperEnd is the number of upper-layer slots of the first n nodes.
func (ix *Index) upperEnd(n int) int {
	end := 0
	for _, b := range ix.pieces(n, ix.upperPiece) {
		end += len(b) / 4
	}
	return end
}

// pieces returns piece(segment, k) for each segment holding some of the
// first n nodes, k of them in it, in order.
func (ix *Index) pieces(n int, piece func(sg *segment, k int) []byte) [][]byte {
	var out [][]byte
	for base := 0; base < n; base += ix.segNodes() {
		out = append(out, piece(ix.segs[base>>ix.segShift], min(n-base, ix.segNodes())))
	}
	return out
}

func (ix *Index) vecsPiece(sg *segment, k int) []byte { return bytesOf(sg.vecs[:k*ix.dim]) }

func (ix *Index) upperPiece(sg *segment, k int) []byte {
	return bytesOf(sg.upper[:ix.segUpperEnd(sg, k)])
}

// slabs are the sections of the payload for the first n nodes, in file
// order, each in a piece per segment. A section is the nodes' field back
// to back, as one slab per field held it: the file does not depend on the
// segments.
func (ix *Index) slabs(n int) [][]byte {
	var out [][]byte
	out = append(out, ix.pieces(n, ix.vecsPiece)...)
	out = append(out, ix.pieces(n, func(sg *segment, k int) []byte { return bytesOf(sg.aug[:k]) })...)
	out = append(out, ix.pieces(n, func(sg *segment, k int) []byte { return bytesOf(sg.ext[:k]) })...)
	out = append(out, ix.pieces(n, func(sg *segment, k int) []byte { return bytesOf(sg.links0[:k*(ix.m0+1)]) })...)
	return append(out, ix.pieces(n, ix.upperPiece)...)
}

// Save writes the index to w, for Load. It fails if an insert is under
// way; searches wait while it writes.
func (ix *Index) Save(w io.Writer) error {
	if !littleEndian {
		return errors.New("failed to save index: the file format is little-endian and this machine is not")
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.idMu.Lock()
	n := int(ix.next)
	ix.idMu.Unlock()
	if linked := ix.linked.Load(); linked != int64(n) {
		return fmt.Errorf("failed to save index: %d of its %d items are still being inserted", int64(n)-linked, n)
	}
	digest := crc64.New(ecma)
	for _, b := range ix.pieces(n, ix.vecsPiece) {
		_, _ = digest.Write(b)
	}
	h := header{
		version: FileVersion, dim: uint32(ix.dim), metric: uint32(ix.metric),
		m: uint32(ix.m), efC: uint32(ix.efC), phi2: ix.phi2.Load(),
		seed: ix.seed, items: uint64(n), upper: uint64(ix.upperEnd(n)),
		entry: ix.entry.Load(), digest: digest.Sum64(),
	}
	if _, err := w.Write(h.encode()); err != nil {
		return fmt.Errorf("failed to save index: %w", err)
	}
	crc := crc32.New(castagnoli)
	for _, s := range ix.slabs(n) {
		_, _ = crc.Write(s)
		if _, err := w.Write(s); err != nil {
			return fmt.Errorf("failed to save index: %w", err)
		}
	}
	if _, err := w.Write(binary.LittleEndian.AppendUint32(nil, crc.Sum32())); err != nil {
		return fmt.Errorf("failed to save index: %w", err)
	}
	return nil
}

// Load reads an index that Save wrote. The file must hold what New(dim,
// metric, opts) and then Build(ctx, ids, vecs[:items*dim]) would: its items
// may be fewer than the len(vecs)/dim given, and the caller then inserts the
// rest (its Len tells how many it holds), but they must be, in order, those
// of ids (nil for the ordinals 0, 1, …) with the leading vectors of vecs.
// Options.M, EfConstruction and Seed must be those the file was built with;
// EfSearch is the caller's. A file that differs is refused with an error
// wrapping ErrMismatch, one that is truncated or damaged with an error
// wrapping ErrCorrupt. The index returned searches exactly as the saved one
// did and takes more items as any other.
func Load(r io.Reader, dim int, metric Metric, opts Options, ids []uint32, vecs []float32) (*Index, error) {
	if !littleEndian {
		return nil, errors.New("failed to load index: the file format is little-endian and this machine is not")
	}
	return load(r, New(dim, metric, opts), ids, vecs)
}

// load is Load into the empty index ix.
func load(r io.Reader, ix *Index, ids []uint32, vecs []float32) (*Index, error) {
	dim := ix.dim
	if len(vecs)%dim != 0 {
		return nil, fmt.Errorf("failed to load index: %w: %d floats is not a multiple of %d", ErrDimension, len(vecs), dim)
	}
	if ids != nil && len(ids) != len(vecs)/dim {
		return nil, fmt.Errorf("failed to load index: %w: %d vectors of %d floats for %d ids", ErrDimension, len(vecs)/dim, dim, len(ids))
	}
	b := make([]byte, headerSize)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, readErr("header", err)
	}
	h, err := decodeHeader(b)
	if err != nil {
		return nil, fmt.Errorf("failed to load index: %w", err)
	}
	if err := ix.matches(&h, vecs); err != nil {
		return nil, fmt.Errorf("failed to load index: %w", err)
	}
	n := int(h.items)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.growLocked(n)
	if end := ix.upperEnd(n); uint64(end) != h.upper {
		return nil, fmt.Errorf("failed to load index: %w: %d upper-layer slots, where its items' layers take %d", ErrCorrupt, h.upper, end)
	}
	if err := ix.readSlabs(r, n); err != nil {
		return nil, err
	}
	if err := ix.adopt(&h, ids); err != nil {
		return nil, fmt.Errorf("failed to load index: %w", err)
	}
	return ix, nil
}

// matches checks that the header describes the index ix would build over
// the leading vectors of vecs.
func (ix *Index) matches(h *header, vecs []float32) error {
	switch {
	case h.dim != uint32(ix.dim):
		return fmt.Errorf("%w: dimension %d, want %d", ErrMismatch, h.dim, ix.dim)
	case h.metric != uint32(ix.metric):
		return fmt.Errorf("%w: metric %v, want %v", ErrMismatch, Metric(h.metric), ix.metric)
	case h.m != uint32(ix.m) || h.efC != uint32(ix.efC) || h.seed != ix.seed:
		return fmt.Errorf("%w: built with M %d, efConstruction %d, seed %d; want %d, %d, %d",
			ErrMismatch, h.m, h.efC, int64(h.seed), ix.m, ix.efC, int64(ix.seed))
	case h.items > uint64(len(vecs)/ix.dim):
		return fmt.Errorf("%w: it holds %d items, more than the %d given", ErrMismatch, h.items, len(vecs)/ix.dim)
	}
	if d := ix.digest(vecs[:int(h.items)*ix.dim]); d != h.digest {
		return fmt.Errorf("%w: built over other vectors (digest %016x, want %016x)", ErrMismatch, h.digest, d)
	}
	return nil
}

// digest is the CRC-64 of vecs as the index stores them.
func (ix *Index) digest(vecs []float32) uint64 {
	d := crc64.New(ecma)
	const chunk = 4096 // vectors encoded at a time
	buf := make([]float32, 0, chunk*ix.dim)
	half := make([]uint16, chunk*ix.dim)
	for len(vecs) > 0 {
		k := min(len(vecs), chunk*ix.dim)
		v := vecs[:k]
		if ix.metric == Cosine {
			buf = append(buf[:0], v...)
			for i := 0; i < len(buf); i += ix.dim {
				normalize(buf[i : i+ix.dim])
			}
			v = buf
		}
		vec.EncodeHalf(half, v)
		_, _ = d.Write(bytesOf(half[:k]))
		vecs = vecs[k:]
	}
	return d.Sum64()
}

// readSlabs reads the payload of n nodes and its trailer into ix's slabs.
func (ix *Index) readSlabs(r io.Reader, n int) error {
	crc := crc32.New(castagnoli)
	for _, s := range ix.slabs(n) {
		if err := readInto(r, s, crc); err != nil {
			return readErr("items", err)
		}
	}
	tail := make([]byte, 5)
	switch k, err := io.ReadFull(r, tail); {
	case k < 4:
		return readErr("checksum", err)
	case k > 4:
		return fmt.Errorf("failed to load index: %w: bytes follow its checksum", ErrCorrupt)
	case binary.LittleEndian.Uint32(tail) != crc.Sum32():
		return fmt.Errorf("failed to load index: %w: the items' checksum does not match", ErrCorrupt)
	}
	return nil
}

// readInto fills b from r in large reads, adding it to crc.
func readInto(r io.Reader, b []byte, crc hash.Hash32) error {
	const step = 64 << 20 // checksummed while still in cache
	for len(b) > 0 {
		k := min(len(b), step)
		if _, err := io.ReadFull(r, b[:k]); err != nil {
			return err
		}
		_, _ = crc.Write(b[:k])
		b = b[k:]
	}
	return nil
}

func readErr(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("failed to load index: %w: truncated in its %s", ErrCorrupt, what)
	}
	return fmt.Errorf("failed to load index: failed to read its %s: %w", what, err)
}

// adopt checks the graph read into the slabs, so that a search never
// follows a link out of them, and takes the header's state: ix then holds
// h.items nodes, all linked.
func (ix *Index) adopt(h *header, ids []uint32) error {
	n := int(h.items)
	for node := 0; node < n; node++ {
		want := uint32(node)
		if ids != nil {
			want = ids[node]
		}
		if got := ix.ext(uint32(node)); got != want {
			return fmt.Errorf("%w: item %d has id %d, want %d", ErrMismatch, node, got, want)
		}
		for l := 0; l <= ix.levelOf(uint32(node)); l++ {
			links, most := ix.links(uint32(node), l), ix.m
			if l == 0 {
				most = ix.m0
			}
			if int(links[0]) > most {
				return fmt.Errorf("%w: item %d has %d links on layer %d, at most %d fit", ErrCorrupt, node, links[0], l, most)
			}
			for _, nb := range links[1 : 1+links[0]] {
				if int(nb) >= n {
					return fmt.Errorf("%w: item %d links to item %d of %d", ErrCorrupt, node, nb, n)
				}
			}
		}
	}
	phi2 := math.Float32frombits(h.phi2)
	if phi2 < 0 || math.IsNaN(float64(phi2)) || math.IsInf(float64(phi2), 0) {
		return fmt.Errorf("%w: the largest squared norm is %v", ErrCorrupt, phi2)
	}
	if node, level := unpackEntry(h.entry); (h.entry == 0) != (n == 0) || n > 0 && (int(node) >= n || level != ix.levelOf(node)) {
		return fmt.Errorf("%w: entry point %d on layer %d is not an item's top layer", ErrCorrupt, node, level)
	}
	dense := true // every node's id is its number: no map (see Index.ids)
	for node := 0; node < n && dense; node++ {
		dense = ix.ext(uint32(node)) == uint32(node)
	}
	if !dense {
		ix.ids = make(map[uint32]uint32, n)
		for node := 0; node < n; node++ {
			ix.ids[ix.ext(uint32(node))] = uint32(node)
		}
		if len(ix.ids) != n {
			return fmt.Errorf("%w: its %d items have %d distinct ids", ErrCorrupt, n, len(ix.ids))
		}
	}
	ix.next = uint32(n)
	ix.linked.Store(int64(n))
	ix.phi2.Store(h.phi2)
	ix.entry.Store(h.entry)
	return nil
}

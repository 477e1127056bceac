//go:build amd64 && !purego

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

#include "textflag.h"

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func dotHalfRowsAVX2(a []float32, rows []*uint16, out []float32)
// For each row in turn, its address from rows: dotAVX2's loop, each 8
// halves widened to 8 floats (VCVTPH2PS) on the way into the FMA, four
// independent accumulators over 32 elements per step, then 8 per step,
// then single elements. The out-of-order core overlaps one row's
// reduction with the next row's loads.
TEXT ·dotHalfRowsAVX2(SB), NOSPLIT, $0-72
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), DX
	MOVQ rows_base+24(FP), R8
	MOVQ rows_len+32(FP), R9
	MOVQ out_base+48(FP), R10
	XORQ R11, R11

row:
	CMPQ R11, R9
	JGE  rowsdone
	MOVQ (R8)(R11*8), DI
	MOVQ SI, BX
	MOVQ DX, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

rloop32:
	CMPQ CX, $32
	JLT  rloop8
	VCVTPH2PS (DI), Y4
	VCVTPH2PS 16(DI), Y5
	VCVTPH2PS 32(DI), Y6
	VCVTPH2PS 48(DI), Y7
	VFMADD231PS (BX), Y4, Y0
	VFMADD231PS 32(BX), Y5, Y1
	VFMADD231PS 64(BX), Y6, Y2
	VFMADD231PS 96(BX), Y7, Y3
	ADDQ $128, BX
	ADDQ $64, DI
	SUBQ $32, CX
	JMP  rloop32

rloop8:
	CMPQ CX, $8
	JLT  rreduce
	VCVTPH2PS (DI), Y4
	VFMADD231PS (BX), Y4, Y0
	ADDQ $32, BX
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  rloop8

rreduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0

rtail:
	CMPQ CX, $0
	JEQ  rstore
	MOVWLZX (DI), AX
	VMOVD AX, X1
	VCVTPH2PS X1, X1
	VFMADD231SS (BX), X1, X0
	ADDQ $4, BX
	ADDQ $2, DI
	DECQ CX
	JMP  rtail

rstore:
	MOVSS X0, (R10)(R11*4)
	INCQ R11
	JMP  row

rowsdone:
	VZEROUPPER
	RET

// func decodeHalfAVX2(dst []float32, src []uint16)
TEXT ·decodeHalfAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX

decode8:
	CMPQ CX, $8
	JLT  decodeTail
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  decode8

decodeTail:
	CMPQ CX, $0
	JEQ  decodeDone
	MOVWLZX (SI), AX
	VMOVD AX, X0
	VCVTPH2PS X0, X0
	VMOVSS X0, (DI)
	ADDQ $2, SI
	ADDQ $4, DI
	DECQ CX
	JMP  decodeTail

decodeDone:
	VZEROUPPER
	RET

// func encodeHalfAVX2(dst []uint16, src []float32)
// 8 floats at a time rounded to nearest even (VCVTPS2PH with immediate 0),
// then the tail one at a time.
TEXT ·encodeHalfAVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX

encode8:
	CMPQ CX, $8
	JLT  encodeTail
	VMOVUPS (SI), Y0
	VCVTPS2PH $0, Y0, (DI)
	ADDQ $32, SI
	ADDQ $16, DI
	SUBQ $8, CX
	JMP  encode8

encodeTail:
	CMPQ CX, $0
	JEQ  encodeDone
	VMOVSS (SI), X0
	VCVTPS2PH $0, X0, X1
	VMOVD X1, AX
	MOVW AX, (DI)
	ADDQ $4, SI
	ADDQ $2, DI
	DECQ CX
	JMP  encodeTail

encodeDone:
	VZEROUPPER
	RET

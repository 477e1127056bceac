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

// func prefetchRange(p unsafe.Pointer, n uintptr)
// Asks for every cache line of the n bytes from p to be loaded, without
// waiting for them.
TEXT ·prefetchRange(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX
	ADDQ AX, CX

loop:
	CMPQ AX, CX
	JGE  done
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP  loop

done:
	RET

// func prefetchRows(rows unsafe.Pointer, count, n uintptr)
// prefetchRange for each of the count pointers at rows, from the start of
// the line each row begins in, so that a row that does not start on a
// line's boundary has its last line asked for too.
TEXT ·prefetchRows(SB), NOSPLIT, $0-24
	MOVQ rows+0(FP), SI
	MOVQ count+8(FP), CX
	MOVQ n+16(FP), DX

next:
	TESTQ CX, CX
	JEQ   rdone
	MOVQ  (SI), AX
	LEAQ  (AX)(DX*1), BX
	ANDQ  $-64, AX

line:
	CMPQ AX, BX
	JGE  rowdone
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP  line

rowdone:
	ADDQ $8, SI
	DECQ CX
	JMP  next

rdone:
	RET

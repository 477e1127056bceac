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

// func prefetch(v []float32)
// Asks for every cache line of v to be loaded, without waiting for it.
TEXT ·prefetch(SB), NOSPLIT, $0-24
	MOVQ v_base+0(FP), AX
	MOVQ v_len+8(FP), CX
	LEAQ (AX)(CX*4), CX

prefetchLoop:
	CMPQ AX, CX
	JGE  prefetchDone
	PREFETCHT0 (AX)
	ADDQ $64, AX
	JMP  prefetchLoop

prefetchDone:
	RET

// func prefetchU32(v []uint32)
TEXT ·prefetchU32(SB), NOSPLIT, $0-24
	JMP ·prefetch(SB)

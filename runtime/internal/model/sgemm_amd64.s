//go:build amd64 && !purego

#include "textflag.h"

// STEP is one step of the k loop: a row of the packed panel (16 floats, at
// byte boff from SI, into Y12:Y13) times element DX of each of the six rows of
// x (at byte aoff beyond it), broadcast alternately into Y14 and Y15, added
// into Y0..Y11.
#define STEP(boff, aoff) \
	VMOVUPS      boff(SI), Y12; \
	VMOVUPS      boff+32(SI), Y13; \
	VBROADCASTSS aoff(R8)(DX*4), Y14; \
	VFMADD231PS  Y12, Y14, Y0; \
	VFMADD231PS  Y13, Y14, Y1; \
	VBROADCASTSS aoff(R9)(DX*4), Y15; \
	VFMADD231PS  Y12, Y15, Y2; \
	VFMADD231PS  Y13, Y15, Y3; \
	VBROADCASTSS aoff(R10)(DX*4), Y14; \
	VFMADD231PS  Y12, Y14, Y4; \
	VFMADD231PS  Y13, Y14, Y5; \
	VBROADCASTSS aoff(R11)(DX*4), Y15; \
	VFMADD231PS  Y12, Y15, Y6; \
	VFMADD231PS  Y13, Y15, Y7; \
	VBROADCASTSS aoff(R12)(DX*4), Y14; \
	VFMADD231PS  Y12, Y14, Y8; \
	VFMADD231PS  Y13, Y14, Y9; \
	VBROADCASTSS aoff(R13)(DX*4), Y15; \
	VFMADD231PS  Y12, Y15, Y10; \
	VFMADD231PS  Y13, Y15, Y11

// ReLU of one accumulator: max(0, y) with the accumulator as the second
// source, so that a NaN passes through as it does in the Go relu.
#define RELU(y) VMAXPS y, Y12, y

// func sgemmTile(k int, a *[kernelRows]*float32, b, bias *float32, c *[kernelRows]*float32, relu bool)
//
// Y0..Y11 hold the 6×16 tile, two registers a row, initialised with the bias.
// The k loop runs four steps at a time, then one at a time.
TEXT ·sgemmTile(SB), NOSPLIT, $0-41
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), SI
	MOVQ bias+24(FP), DI
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ 32(AX), R12
	MOVQ 40(AX), R13

	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y1, Y3
	VMOVAPS Y0, Y4
	VMOVAPS Y1, Y5
	VMOVAPS Y0, Y6
	VMOVAPS Y1, Y7
	VMOVAPS Y0, Y8
	VMOVAPS Y1, Y9
	VMOVAPS Y0, Y10
	VMOVAPS Y1, Y11

	XORQ DX, DX
	MOVQ CX, BX
	ANDQ $-4, BX
	JZ   loop1

loop4:
	STEP(0, 0)
	STEP(64, 4)
	STEP(128, 8)
	STEP(192, 12)
	ADDQ $256, SI
	ADDQ $4, DX
	CMPQ DX, BX
	JLT  loop4

loop1:
	CMPQ DX, CX
	JGE  epilogue
	STEP(0, 0)
	ADDQ $64, SI
	INCQ DX
	JMP  loop1

epilogue:
	CMPB relu+40(FP), $0
	JEQ  store
	VXORPS Y12, Y12, Y12
	RELU(Y0)
	RELU(Y1)
	RELU(Y2)
	RELU(Y3)
	RELU(Y4)
	RELU(Y5)
	RELU(Y6)
	RELU(Y7)
	RELU(Y8)
	RELU(Y9)
	RELU(Y10)
	RELU(Y11)

store:
	MOVQ    c+32(FP), AX
	MOVQ    0(AX), R8
	VMOVUPS Y0, (R8)
	VMOVUPS Y1, 32(R8)
	MOVQ    8(AX), R8
	VMOVUPS Y2, (R8)
	VMOVUPS Y3, 32(R8)
	MOVQ    16(AX), R8
	VMOVUPS Y4, (R8)
	VMOVUPS Y5, 32(R8)
	MOVQ    24(AX), R8
	VMOVUPS Y6, (R8)
	VMOVUPS Y7, 32(R8)
	MOVQ    32(AX), R8
	VMOVUPS Y8, (R8)
	VMOVUPS Y9, 32(R8)
	MOVQ    40(AX), R8
	VMOVUPS Y10, (R8)
	VMOVUPS Y11, 32(R8)
	VZEROUPPER
	RET



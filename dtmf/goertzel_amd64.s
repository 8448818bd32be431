#include "textflag.h"

// func goertzel8SSE2(x []float64, s1, s2, c *[8]float64)
//
// The eight filters of goertzel8Go, two per SSE2 register, in the same
// order of operations, so the results are the same to the bit. Two samples
// a turn: b takes s[n], then a takes s[n+1], as in goertzel4.
TEXT ·goertzel8SSE2(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ s1+24(FP), AX
	MOVQ s2+32(FP), BX
	MOVQ c+40(FP), DX
	MOVUPD 0(AX), X0
	MOVUPD 16(AX), X1
	MOVUPD 32(AX), X2
	MOVUPD 48(AX), X3
	MOVUPD 0(BX), X4
	MOVUPD 16(BX), X5
	MOVUPD 32(BX), X6
	MOVUPD 48(BX), X7
	MOVUPD 0(DX), X8
	MOVUPD 16(DX), X9
	MOVUPD 32(DX), X10
	MOVUPD 48(DX), X11

pair:
	CMPQ CX, $2
	JLT  tail
	MOVSD    0(SI), X12
	UNPCKLPD X12, X12
	// b = c*a - b + x[i]
	MOVAPD X0, X13
	MULPD  X8, X13
	SUBPD  X4, X13
	ADDPD  X12, X13
	MOVAPD X13, X4
	MOVAPD X1, X13
	MULPD  X9, X13
	SUBPD  X5, X13
	ADDPD  X12, X13
	MOVAPD X13, X5
	MOVAPD X2, X13
	MULPD  X10, X13
	SUBPD  X6, X13
	ADDPD  X12, X13
	MOVAPD X13, X6
	MOVAPD X3, X13
	MULPD  X11, X13
	SUBPD  X7, X13
	ADDPD  X12, X13
	MOVAPD X13, X7
	MOVSD    8(SI), X12
	UNPCKLPD X12, X12
	// a = c*b - a + x[i+1]
	MOVAPD X4, X13
	MULPD  X8, X13
	SUBPD  X0, X13
	ADDPD  X12, X13
	MOVAPD X13, X0
	MOVAPD X5, X13
	MULPD  X9, X13
	SUBPD  X1, X13
	ADDPD  X12, X13
	MOVAPD X13, X1
	MOVAPD X6, X13
	MULPD  X10, X13
	SUBPD  X2, X13
	ADDPD  X12, X13
	MOVAPD X13, X2
	MOVAPD X7, X13
	MULPD  X11, X13
	SUBPD  X3, X13
	ADDPD  X12, X13
	MOVAPD X13, X3
	ADDQ $16, SI
	SUBQ $2, CX
	JMP  pair

tail:
	CMPQ CX, $0
	JEQ  done
	// a, b = c*a - b + x, a
	MOVSD    0(SI), X12
	UNPCKLPD X12, X12
	MOVAPD X0, X13
	MULPD  X8, X13
	SUBPD  X4, X13
	ADDPD  X12, X13
	MOVAPD X0, X4
	MOVAPD X13, X0
	MOVAPD X1, X13
	MULPD  X9, X13
	SUBPD  X5, X13
	ADDPD  X12, X13
	MOVAPD X1, X5
	MOVAPD X13, X1
	MOVAPD X2, X13
	MULPD  X10, X13
	SUBPD  X6, X13
	ADDPD  X12, X13
	MOVAPD X2, X6
	MOVAPD X13, X2
	MOVAPD X3, X13
	MULPD  X11, X13
	SUBPD  X7, X13
	ADDPD  X12, X13
	MOVAPD X3, X7
	MOVAPD X13, X3

done:
	MOVUPD X0, 0(AX)
	MOVUPD X1, 16(AX)
	MOVUPD X2, 32(AX)
	MOVUPD X3, 48(AX)
	MOVUPD X4, 0(BX)
	MOVUPD X5, 16(BX)
	MOVUPD X6, 32(BX)
	MOVUPD X7, 48(BX)
	RET

// STEP advances one pair of filters by the sample in X12: b = c*a - b + x,
// in goertzel8's order of operations.
#define STEP(a, b, c) \
	MOVAPD a, X13; \
	MULPD  c, X13; \
	SUBPD  b, X13; \
	ADDPD  X12, X13; \
	MOVAPD X13, b

// LOAD decodes the G.711 byte at off(SI) through the table at DI into both
// halves of X12 and adds its square to the energy in X15.
#define LOAD(off) \
	MOVBQZX  off(SI), R8; \
	MOVSD    (DI)(R8*8), X12; \
	MOVSD    X12, X14; \
	MULSD    X14, X14; \
	ADDSD    X14, X15; \
	UNPCKLPD X12, X12

// func goertzel8G711SSE2(in []byte, table *[256]float64, s1, s2, c *[8]float64) (energy float64)
//
// goertzel8 fed with G.711 bytes decoded by table, returning the samples'
// energy summed in order: the same results as goertzel8G711Go, to the bit.
TEXT ·goertzel8G711SSE2(SB), NOSPLIT, $0-64
	MOVQ in_base+0(FP), SI
	MOVQ in_len+8(FP), CX
	MOVQ table+24(FP), DI
	MOVQ s1+32(FP), AX
	MOVQ s2+40(FP), BX
	MOVQ c+48(FP), DX
	MOVUPD 0(AX), X0
	MOVUPD 16(AX), X1
	MOVUPD 32(AX), X2
	MOVUPD 48(AX), X3
	MOVUPD 0(BX), X4
	MOVUPD 16(BX), X5
	MOVUPD 32(BX), X6
	MOVUPD 48(BX), X7
	MOVUPD 0(DX), X8
	MOVUPD 16(DX), X9
	MOVUPD 32(DX), X10
	MOVUPD 48(DX), X11
	XORPS  X15, X15

g711pair:
	CMPQ CX, $2
	JLT  g711tail
	LOAD(0)
	STEP(X0, X4, X8)
	STEP(X1, X5, X9)
	STEP(X2, X6, X10)
	STEP(X3, X7, X11)
	LOAD(1)
	STEP(X4, X0, X8)
	STEP(X5, X1, X9)
	STEP(X6, X2, X10)
	STEP(X7, X3, X11)
	ADDQ $2, SI
	SUBQ $2, CX
	JMP  g711pair

g711tail:
	CMPQ CX, $0
	JEQ  g711done
	// One sample left: step into b, then swap a and b.
	LOAD(0)
	STEP(X0, X4, X8)
	STEP(X1, X5, X9)
	STEP(X2, X6, X10)
	STEP(X3, X7, X11)
	MOVUPD X4, 0(AX)
	MOVUPD X5, 16(AX)
	MOVUPD X6, 32(AX)
	MOVUPD X7, 48(AX)
	MOVUPD X0, 0(BX)
	MOVUPD X1, 16(BX)
	MOVUPD X2, 32(BX)
	MOVUPD X3, 48(BX)
	MOVSD  X15, energy+56(FP)
	RET

g711done:
	MOVUPD X0, 0(AX)
	MOVUPD X1, 16(AX)
	MOVUPD X2, 32(AX)
	MOVUPD X3, 48(AX)
	MOVUPD X4, 0(BX)
	MOVUPD X5, 16(BX)
	MOVUPD X6, 32(BX)
	MOVUPD X7, 48(BX)
	MOVSD  X15, energy+56(FP)
	RET

// The AVX versions: four filters a register, three-operand instructions,
// no moves; the same operations in the same order, so the same bits.

// VSTEP: b = c*a - b + x for four filters, x in Y6.
#define VSTEP(a, b, c) \
	VMULPD a, c, Y7; \
	VSUBPD b, Y7, Y7; \
	VADDPD Y6, Y7, b

#define VLOADSTATE \
	VMOVUPD 0(AX), Y0; \
	VMOVUPD 32(AX), Y1; \
	VMOVUPD 0(BX), Y2; \
	VMOVUPD 32(BX), Y3; \
	VMOVUPD 0(DX), Y4; \
	VMOVUPD 32(DX), Y5

// func goertzel8AVX(x []float64, s1, s2, c *[8]float64)
TEXT ·goertzel8AVX(SB), NOSPLIT, $0-48
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	MOVQ s1+24(FP), AX
	MOVQ s2+32(FP), BX
	MOVQ c+40(FP), DX
	VLOADSTATE

avxpair:
	CMPQ CX, $2
	JLT  avxtail
	VBROADCASTSD 0(SI), Y6
	VSTEP(Y0, Y2, Y4)
	VSTEP(Y1, Y3, Y5)
	VBROADCASTSD 8(SI), Y6
	VSTEP(Y2, Y0, Y4)
	VSTEP(Y3, Y1, Y5)
	ADDQ $16, SI
	SUBQ $2, CX
	JMP  avxpair

avxtail:
	CMPQ CX, $0
	JEQ  avxdone
	VBROADCASTSD 0(SI), Y6
	VSTEP(Y0, Y2, Y4)
	VSTEP(Y1, Y3, Y5)
	// s[n] is in b: b becomes s1, a becomes s2.
	VMOVUPD Y2, 0(AX)
	VMOVUPD Y3, 32(AX)
	VMOVUPD Y0, 0(BX)
	VMOVUPD Y1, 32(BX)
	VZEROUPPER
	RET

avxdone:
	VMOVUPD Y0, 0(AX)
	VMOVUPD Y1, 32(AX)
	VMOVUPD Y2, 0(BX)
	VMOVUPD Y3, 32(BX)
	VZEROUPPER
	RET

// VLOAD decodes the byte at off(SI) through the table at DI into all four
// lanes of Y6 and adds its square to the energy in X8.
#define VLOAD(off) \
	MOVBQZX      off(SI), R8; \
	VBROADCASTSD (DI)(R8*8), Y6; \
	VMULSD       X6, X6, X9; \
	VADDSD       X9, X8, X8

// func goertzel8G711AVX(in []byte, table *[256]float64, s1, s2, c *[8]float64) (energy float64)
TEXT ·goertzel8G711AVX(SB), NOSPLIT, $0-64
	MOVQ in_base+0(FP), SI
	MOVQ in_len+8(FP), CX
	MOVQ table+24(FP), DI
	MOVQ s1+32(FP), AX
	MOVQ s2+40(FP), BX
	MOVQ c+48(FP), DX
	VLOADSTATE
	VXORPD X8, X8, X8

avxg711pair:
	CMPQ CX, $2
	JLT  avxg711tail
	VLOAD(0)
	VSTEP(Y0, Y2, Y4)
	VSTEP(Y1, Y3, Y5)
	VLOAD(1)
	VSTEP(Y2, Y0, Y4)
	VSTEP(Y3, Y1, Y5)
	ADDQ $2, SI
	SUBQ $2, CX
	JMP  avxg711pair

avxg711tail:
	CMPQ CX, $0
	JEQ  avxg711done
	VLOAD(0)
	VSTEP(Y0, Y2, Y4)
	VSTEP(Y1, Y3, Y5)
	VMOVUPD Y2, 0(AX)
	VMOVUPD Y3, 32(AX)
	VMOVUPD Y0, 0(BX)
	VMOVUPD Y1, 32(BX)
	VMOVSD  X8, energy+56(FP)
	VZEROUPPER
	RET

avxg711done:
	VMOVUPD Y0, 0(AX)
	VMOVUPD Y1, 32(AX)
	VMOVUPD Y2, 0(BX)
	VMOVUPD Y3, 32(BX)
	VMOVSD  X8, energy+56(FP)
	VZEROUPPER
	RET

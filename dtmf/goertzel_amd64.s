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

// XSTEP: b = c*a - b + x for four filters of one sub-block, x in Y12.
#define XSTEP(a, b, c) \
	VMULPD a, c, Y13; \
	VSUBPD b, Y13, Y13; \
	VADDPD Y12, Y13, b

// XSUB advances the eight filters of the sub-block at off(SI): into b
// (Y-registers blo, bhi) from a (alo, ahi).
#define XSUB(off, alo, ahi, blo, bhi) \
	VBROADCASTSD off(SI), Y12; \
	XSTEP(alo, blo, Y14); \
	XSTEP(ahi, bhi, Y15)

// func goertzel8x3AVX(x *[3 * subLen]float64, s *[3][2][8]float64, c *[8]float64)
//
// goertzel8AVX from rest over three sub-blocks at once: each one's filters
// wait on their own last step, so three run in the time of one. Each keeps
// goertzel8Go's order of operations, so the results are the same bits.
TEXT ·goertzel8x3AVX(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ s+8(FP), DI
	MOVQ c+16(FP), DX
	VMOVUPD 0(DX), Y14
	VMOVUPD 32(DX), Y15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	MOVQ $16, CX // sample pairs in a sub-block

x3pair:
	// Sub-blocks are 32 samples, 256 bytes, apart.
	XSUB(0, Y0, Y1, Y2, Y3)
	XSUB(256, Y4, Y5, Y6, Y7)
	XSUB(512, Y8, Y9, Y10, Y11)
	XSUB(8, Y2, Y3, Y0, Y1)
	XSUB(264, Y6, Y7, Y4, Y5)
	XSUB(520, Y10, Y11, Y8, Y9)
	ADDQ $16, SI
	DECQ CX
	JNZ  x3pair

	// An even count: a holds s1, b s2.
	VMOVUPD Y0, 0(DI)
	VMOVUPD Y1, 32(DI)
	VMOVUPD Y2, 64(DI)
	VMOVUPD Y3, 96(DI)
	VMOVUPD Y4, 128(DI)
	VMOVUPD Y5, 160(DI)
	VMOVUPD Y6, 192(DI)
	VMOVUPD Y7, 224(DI)
	VMOVUPD Y8, 256(DI)
	VMOVUPD Y9, 288(DI)
	VMOVUPD Y10, 320(DI)
	VMOVUPD Y11, 352(DI)
	VZEROUPPER
	RET

// GSUB is XSUB for G.711: the byte at off(SI) decoded through the table
// at DI, its square added to the energy in register e.
#define GSUB(off, e, alo, ahi, blo, bhi) \
	MOVBQZX      off(SI), R9; \
	VBROADCASTSD (DI)(R9*8), Y12; \
	ADDQ         2048(DI)(R9*8), e; \
	XSTEP(alo, blo, Y14); \
	XSTEP(ahi, bhi, Y15)

// func goertzel8x3G711AVX(in *[3 * subLen]byte, t *g711Table, s *[3][2][8]float64, e *[3]int64, c *[8]float64)
//
// goertzel8x3AVX fed with G.711 bytes decoded by the table's samples (t.f,
// at 0), returning each sub-block's energy from its squares (t.sq, at 2048).
TEXT ·goertzel8x3G711AVX(SB), NOSPLIT, $0-40
	MOVQ in+0(FP), SI
	MOVQ t+8(FP), DI
	MOVQ s+16(FP), R11
	MOVQ c+32(FP), DX
	VMOVUPD 0(DX), Y14
	VMOVUPD 32(DX), Y15
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	VXORPD Y2, Y2, Y2
	VXORPD Y3, Y3, Y3
	VXORPD Y4, Y4, Y4
	VXORPD Y5, Y5, Y5
	VXORPD Y6, Y6, Y6
	VXORPD Y7, Y7, Y7
	VXORPD Y8, Y8, Y8
	VXORPD Y9, Y9, Y9
	VXORPD Y10, Y10, Y10
	VXORPD Y11, Y11, Y11
	XORQ R10, R10
	XORQ R12, R12
	XORQ R13, R13
	MOVQ $16, CX

g3pair:
	// Sub-blocks are 32 bytes apart.
	GSUB(0, R10, Y0, Y1, Y2, Y3)
	GSUB(32, R12, Y4, Y5, Y6, Y7)
	GSUB(64, R13, Y8, Y9, Y10, Y11)
	GSUB(1, R10, Y2, Y3, Y0, Y1)
	GSUB(33, R12, Y6, Y7, Y4, Y5)
	GSUB(65, R13, Y10, Y11, Y8, Y9)
	ADDQ $2, SI
	DECQ CX
	JNZ  g3pair

	VMOVUPD Y0, 0(R11)
	VMOVUPD Y1, 32(R11)
	VMOVUPD Y2, 64(R11)
	VMOVUPD Y3, 96(R11)
	VMOVUPD Y4, 128(R11)
	VMOVUPD Y5, 160(R11)
	VMOVUPD Y6, 192(R11)
	VMOVUPD Y7, 224(R11)
	VMOVUPD Y8, 256(R11)
	VMOVUPD Y9, 288(R11)
	VMOVUPD Y10, 320(R11)
	VMOVUPD Y11, 352(R11)
	MOVQ e+24(FP), AX
	MOVQ R10, 0(AX)
	MOVQ R12, 8(AX)
	MOVQ R13, 16(AX)
	VZEROUPPER
	RET

// POWERS stores |z|² of the two complex numbers in Y-register z, whose
// lower half is x, at dst: re²+im², as in Go. It clobbers Y2 and z.
#define POWERS(z, x, dst) \
	VMULPD       z, z, z; \
	VHADDPD      z, z, z; \
	VEXTRACTF128 $1, z, X2; \
	VUNPCKLPD    X2, x, x; \
	VMOVUPD      x, dst

// PAIR projects filters k and k+1: s1 and s2 at s1o and s2o(AX), their
// a and b at ao and bo(BX), z at zo of sx (CX) and y (DI), powers at po
// of sp (DX) and yp (R8).
#define PAIR(s1o, s2o, ao, bo, zo, po) \
	VBROADCASTSD s1o(AX), Y0; \
	VBROADCASTSD s1o+8(AX), Y1; \
	VBLENDPD     $12, Y1, Y0, Y0; \
	VBROADCASTSD s2o(AX), Y1; \
	VBROADCASTSD s2o+8(AX), Y2; \
	VBLENDPD     $12, Y2, Y1, Y1; \
	VMULPD       ao(BX), Y0, Y0; \
	VMULPD       bo(BX), Y1, Y1; \
	VSUBPD       Y1, Y0, Y0; \
	VSUBPD       zo(CX), Y0, Y1; \
	VADDPD       zo(DI), Y1, Y1; \
	VMOVUPD      Y1, zo(DI); \
	VMOVUPD      Y0, zo(CX); \
	POWERS(Y1, X1, po(R8)); \
	POWERS(Y0, X0, po(DX))


// func projectAVX(st *[2][8]float64, ref *[2][8]complex128, sx *[8]complex128, sp *[8]float64, y *[8]complex128, yp *[8]float64)
//
// projectGo two filters a register: the same operations on the same
// operands, so the same bits.
TEXT ·projectAVX(SB), NOSPLIT, $0-48
	MOVQ st+0(FP), AX
	MOVQ ref+8(FP), BX
	MOVQ sx+16(FP), CX
	MOVQ sp+24(FP), DX
	MOVQ y+32(FP), DI
	MOVQ yp+40(FP), R8
	PAIR(0, 64, 0, 128, 0, 0)
	PAIR(16, 80, 32, 160, 32, 16)
	PAIR(32, 96, 64, 192, 64, 32)
	PAIR(48, 112, 96, 224, 96, 48)
	VZEROUPPER
	RET

// SUM3 adds filters k and k+1 of the three sub-blocks at zo and stores the
// window's DFT at zo(DI) and its powers, scaled by X3, at po(DX).
#define SUM3(zo, po) \
	VMOVUPD zo(AX), Y0; \
	VADDPD  zo(BX), Y0, Y0; \
	VADDPD  zo(CX), Y0, Y0; \
	VMOVUPD Y0, zo(DI); \
	VMULPD       Y0, Y0, Y0; \
	VHADDPD      Y0, Y0, Y0; \
	VEXTRACTF128 $1, Y0, X2; \
	VUNPCKLPD    X2, X0, X0; \
	VMULPD       X3, X0, X0; \
	VMOVUPD      X0, po(DX)

// BROAD adds four powers of the three sub-blocks at off into broad (R11).
#define BROAD(off) \
	VMOVUPD off(R8), Y0; \
	VADDPD  off(R9), Y0, Y0; \
	VADDPD  off(R10), Y0, Y0; \
	VMOVUPD Y0, off(R11)

// func sum3AVX(s *[3]*[8]complex128, p *[3]*[8]float64, scale float64, x *[8]complex128, amp2, broad *[8]float64)
//
// sum3Go two filters a register: the same operations, the same bits.
TEXT ·sum3AVX(SB), NOSPLIT, $0-48
	MOVQ s+0(FP), SI
	MOVQ 0(SI), AX
	MOVQ 8(SI), BX
	MOVQ 16(SI), CX
	MOVQ p+8(FP), SI
	MOVQ 0(SI), R8
	MOVQ 8(SI), R9
	MOVQ 16(SI), R10
	VMOVDDUP scale+16(FP), X3
	MOVQ x+24(FP), DI
	MOVQ amp2+32(FP), DX
	MOVQ broad+40(FP), R11
	SUM3(0, 0)
	SUM3(32, 16)
	SUM3(64, 32)
	SUM3(96, 48)
	BROAD(0)
	BROAD(32)
	VZEROUPPER
	RET

// CONV4 converts the four samples at off(SI) to float64 at 4*off(DI) and
// adds their squares to Y2.
#define CONV4(off) \
	VPMOVSXWD off(SI), X0; \
	VCVTDQ2PD X0, Y0; \
	VMOVUPD   Y0, (4*off)(DI); \
	VMULPD    Y0, Y0, Y1; \
	VADDPD    Y1, Y2, Y2

// func toFloatAVX(dst *[subLen]float64, src *[subLen]int16) (energy float64)
//
// toFloat for a whole sub-block, four samples an instruction. The squares
// and their sums are integers below 2^53, exact in any order, so the
// energy is toFloat's to the bit.
TEXT ·toFloatAVX(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	VXORPD Y2, Y2, Y2
	CONV4(0)
	CONV4(8)
	CONV4(16)
	CONV4(24)
	CONV4(32)
	CONV4(40)
	CONV4(48)
	CONV4(56)
	VEXTRACTF128 $1, Y2, X1
	VADDPD       X1, X2, X2
	VHADDPD      X2, X2, X2
	VMOVSD       X2, energy+16(FP)
	VZEROUPPER
	RET

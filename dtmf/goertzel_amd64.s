#include "textflag.h"
#include "go_asm.h"

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

// ZERO4 and STORE4 clear and store one sub-block's filters: s1 in a0 and
// a1, s2 in b0 and b1 (an even count of samples leaves s1 in a), at off of
// register base.
#define ZERO4(a0, a1, b0, b1) \
	VXORPD a0, a0, a0; \
	VXORPD a1, a1, a1; \
	VXORPD b0, b0, b0; \
	VXORPD b1, b1, b1

#define STORE4(a0, a1, b0, b1, base, off) \
	VMOVUPD a0, off(base); \
	VMOVUPD a1, off+32(base); \
	VMOVUPD b0, off+64(base); \
	VMOVUPD b1, off+96(base)

// func goertzel8SubsAVX(x *[batchSubs * subLen]float64, s *[batchSubs][2][8]float64, k int, c *[8]float64)
//
// goertzel8AVX from rest over each of the first k sub-blocks of x, three at
// once: each one's filters wait on their own last step, so three run in
// the time of one. Each keeps goertzel8Go's order of operations, so the
// results are the same bits. A last pass of one or two sub-blocks takes
// those only.
TEXT ·goertzel8SubsAVX(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ s+8(FP), DI
	MOVQ k+16(FP), BX
	MOVQ c+24(FP), DX
	VMOVUPD 0(DX), Y14
	VMOVUPD 32(DX), Y15

x3pass:
	CMPQ BX, $2
	JLT  x1pass
	JEQ  x2pass
	ZERO4(Y0, Y1, Y2, Y3)
	ZERO4(Y4, Y5, Y6, Y7)
	ZERO4(Y8, Y9, Y10, Y11)
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
	STORE4(Y0, Y1, Y2, Y3, DI, 0)
	STORE4(Y4, Y5, Y6, Y7, DI, 128)
	STORE4(Y8, Y9, Y10, Y11, DI, 256)
	ADDQ $512, SI // to the next pass's first sample
	ADDQ $384, DI
	SUBQ $3, BX
	JGT  x3pass
	VZEROUPPER
	RET

x2pass:
	ZERO4(Y0, Y1, Y2, Y3)
	ZERO4(Y4, Y5, Y6, Y7)
	MOVQ $16, CX

x2pair:
	XSUB(0, Y0, Y1, Y2, Y3)
	XSUB(256, Y4, Y5, Y6, Y7)
	XSUB(8, Y2, Y3, Y0, Y1)
	XSUB(264, Y6, Y7, Y4, Y5)
	ADDQ $16, SI
	DECQ CX
	JNZ  x2pair
	STORE4(Y0, Y1, Y2, Y3, DI, 0)
	STORE4(Y4, Y5, Y6, Y7, DI, 128)
	VZEROUPPER
	RET

x1pass:
	ZERO4(Y0, Y1, Y2, Y3)
	MOVQ $16, CX

x1pair:
	XSUB(0, Y0, Y1, Y2, Y3)
	XSUB(8, Y2, Y3, Y0, Y1)
	ADDQ $16, SI
	DECQ CX
	JNZ  x1pair
	STORE4(Y0, Y1, Y2, Y3, DI, 0)
	VZEROUPPER
	RET

// GSUB is XSUB for G.711: the byte at off(SI) decoded through the table at
// DI, its square added to the energy in register e.
#define GSUB(off, e, alo, ahi, blo, bhi) \
	MOVBQZX      off(SI), R9; \
	VBROADCASTSD (DI)(R9*8), Y12; \
	ADDQ         2048(DI)(R9*8), e; \
	XSTEP(alo, blo, Y14); \
	XSTEP(ahi, bhi, Y15)

// ENERGY stores a sub-block's energy, an integer below 2^53 in register e,
// as a float64 (exact) at off(AX).
#define ENERGY(e, off) \
	VCVTSI2SDQ e, X0, X0; \
	VMOVSD     X0, off(AX)

// func goertzel8SubsG711AVX(in []byte, t *g711Table, s *[batchSubs][2][8]float64, e *[batchSubs]float64, c *[8]float64)
//
// goertzel8SubsAVX fed with the len(in)/subLen (one to batchSubs) whole
// sub-blocks of G.711 bytes in, decoded by the table's samples (t.f, at
// 0), and each sub-block's energy from its squares (t.sq, at 2048). It
// reads nothing past in.
TEXT ·goertzel8SubsG711AVX(SB), NOSPLIT, $0-56
	MOVQ in_base+0(FP), SI
	MOVQ in_len+8(FP), DX
	SHRQ $5, DX // sub-blocks left
	MOVQ t+24(FP), DI
	MOVQ s+32(FP), R11
	MOVQ e+40(FP), AX
	MOVQ c+48(FP), BX
	VMOVUPD 0(BX), Y14
	VMOVUPD 32(BX), Y15

g3pass:
	CMPQ DX, $2
	JLT  g1pass
	JEQ  g2pass
	ZERO4(Y0, Y1, Y2, Y3)
	ZERO4(Y4, Y5, Y6, Y7)
	ZERO4(Y8, Y9, Y10, Y11)
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
	STORE4(Y0, Y1, Y2, Y3, R11, 0)
	STORE4(Y4, Y5, Y6, Y7, R11, 128)
	STORE4(Y8, Y9, Y10, Y11, R11, 256)
	ENERGY(R10, 0)
	ENERGY(R12, 8)
	ENERGY(R13, 16)
	ADDQ $64, SI // to the next pass's first byte
	ADDQ $384, R11
	ADDQ $24, AX
	SUBQ $3, DX
	JGT  g3pass
	VZEROUPPER
	RET

g2pass:
	ZERO4(Y0, Y1, Y2, Y3)
	ZERO4(Y4, Y5, Y6, Y7)
	XORQ R10, R10
	XORQ R12, R12
	MOVQ $16, CX

g2pair:
	GSUB(0, R10, Y0, Y1, Y2, Y3)
	GSUB(32, R12, Y4, Y5, Y6, Y7)
	GSUB(1, R10, Y2, Y3, Y0, Y1)
	GSUB(33, R12, Y6, Y7, Y4, Y5)
	ADDQ $2, SI
	DECQ CX
	JNZ  g2pair
	STORE4(Y0, Y1, Y2, Y3, R11, 0)
	STORE4(Y4, Y5, Y6, Y7, R11, 128)
	ENERGY(R10, 0)
	ENERGY(R12, 8)
	VZEROUPPER
	RET

g1pass:
	ZERO4(Y0, Y1, Y2, Y3)
	XORQ R10, R10
	MOVQ $16, CX

g1pair:
	GSUB(0, R10, Y0, Y1, Y2, Y3)
	GSUB(1, R10, Y2, Y3, Y0, Y1)
	ADDQ $2, SI
	DECQ CX
	JNZ  g1pair
	STORE4(Y0, Y1, Y2, Y3, R11, 0)
	ENERGY(R10, 0)
	VZEROUPPER
	RET

// POWERS4 leaves in dst |z|² of the four complex numbers in a (filters
// k and k+1) and b (k+2 and k+3), in order: re²+im², as in Go. It
// clobbers a, b and t.
#define POWERS4(a, b, t, dst) \
	VMULPD     a, a, a; \
	VMULPD     b, b, b; \
	VHADDPD    b, a, dst; \
	VPERMILPD  $5, dst, t; \
	VPERM2F128 $1, t, t, t; \
	VBLENDPD   $6, t, dst, dst

// DUP2 loads the two float64 at off(base) as [v0, v0, v1, v1] into dst.
#define DUP2(off, base, dst) \
	VBROADCASTF128 off(base), dst; \
	VPERMILPD      $12, dst, dst

// PROJ projects filters k and k+1: s1 and s2 at s1o and s2o(AX), their a
// and b at ao and bo(BX), z at zo of sx (CX) and y (DI), left in z and yv.
#define PROJ(s1o, s2o, ao, bo, zo, z, yv) \
	DUP2(s1o, AX, z); \
	DUP2(s2o, AX, yv); \
	VMULPD  ao(BX), z, z; \
	VMULPD  bo(BX), yv, yv; \
	VSUBPD  yv, z, z; \
	VSUBPD  zo(CX), z, yv; \
	VADDPD  zo(DI), yv, yv; \
	VMOVUPD yv, zo(DI); \
	VMOVUPD z, zo(CX)

// QUAD is PROJ of filters k to k+3 and their powers, at po of sp (DX) and
// yp (R8); it leaves yp's in keep.
#define QUAD(s1o, s2o, ao, bo, zo, po, keep) \
	PROJ(s1o, s2o, ao, bo, zo, Y0, Y1); \
	PROJ(s1o+16, s2o+16, ao+32, bo+32, zo+32, Y2, Y3); \
	POWERS4(Y1, Y3, Y8, keep); \
	VMOVUPD keep, po(R8); \
	POWERS4(Y0, Y2, Y8, Y9); \
	VMOVUPD Y9, po(DX)

// MAX4 leaves the largest of v's four powers in every lane of m, through
// t. The powers are never negative nor NaN, so VMAXPD's answer is the
// larger, as Go's comparison of their bits.
#define MAX4(v, t, m) \
	VPERM2F128 $1, v, v, t; \
	VMAXPD     t, v, m; \
	VPERMILPD  $5, m, t; \
	VMAXPD     t, m, m

// BEST4 is best2 for the group of four powers in v, of first index add:
// at ioff(R11) the index of the strongest (the first of equals, as the
// pairwise comparisons pick it), at voff(R11) its power, at soff(R11) the
// largest of the other three. The runner-up is taken with the winner's
// lane cleared (to zero, which no power is below), so a tie gives the
// tied power, as in Go. It clobbers R12, t and u; R13 holds lane<>.
#define BEST4(v, t, u, xt, xu, add, ioff, voff, soff) \
	MAX4(v, u, t); \
	VCMPPD     $0, t, v, u; \
	VMOVMSKPD  u, R12; \
	BSFQ       R12, R12; \
	VMOVSD     xt, voff(R11); \
	SHLQ       $5, R12; \
	VMOVUPD    (R13)(R12*1), u; \
	VANDNPD    v, u, u; \
	SHRQ       $5, R12; \
	ADDQ       $add, R12; \
	MOVQ       R12, ioff(R11); \
	MAX4(u, t, u); \
	VMOVSD     xu, soff(R11)

// lane<>[i] has the bits of lane i set: BEST4 clears the winner with it.
DATA lane<>+0(SB)/8, $-1
DATA lane<>+8(SB)/8, $0
DATA lane<>+16(SB)/8, $0
DATA lane<>+24(SB)/8, $0
DATA lane<>+32(SB)/8, $0
DATA lane<>+40(SB)/8, $-1
DATA lane<>+48(SB)/8, $0
DATA lane<>+56(SB)/8, $0
DATA lane<>+64(SB)/8, $0
DATA lane<>+72(SB)/8, $0
DATA lane<>+80(SB)/8, $-1
DATA lane<>+88(SB)/8, $0
DATA lane<>+96(SB)/8, $0
DATA lane<>+104(SB)/8, $0
DATA lane<>+112(SB)/8, $0
DATA lane<>+120(SB)/8, $-1
GLOBL lane<>(SB), RODATA|NOPTR, $128

// BEST8 is best2 of the eight powers whose halves are in lo and hi,
// into the pick at R11.
#define BEST8(lo, hi) \
	LEAQ  lane<>(SB), R13; \
	BEST4(lo, Y8, Y9, X8, X9, 0, 0, 16, 32); \
	BEST4(hi, Y8, Y9, X8, X9, 4, 8, 24, 40)

// SUM4 adds filters k to k+3 of the three sub-blocks at zo and stores the
// window's DFT at zo(DI) and its powers, scaled by Y3, at po(DX), leaving
// them in keep.
#define SUM4(zo, po, keep) \
	VMOVUPD zo(AX), Y0; \
	VADDPD  zo(BX), Y0, Y0; \
	VADDPD  zo(CX), Y0, Y0; \
	VMOVUPD Y0, zo(DI); \
	VMOVUPD zo+32(AX), Y1; \
	VADDPD  zo+32(BX), Y1, Y1; \
	VADDPD  zo+32(CX), Y1, Y1; \
	VMOVUPD Y1, zo+32(DI); \
	POWERS4(Y0, Y1, Y8, keep); \
	VMULPD  Y3, keep, keep; \
	VMOVUPD keep, po(DX)

// BROAD adds four powers of the three sub-blocks at off into broad (R11),
// leaving them in sum.
#define BROAD(off, sum) \
	VMOVUPD off(R8), sum; \
	VADDPD  off(R9), sum, sum; \
	VADDPD  off(SI), sum, sum; \
	VMOVUPD sum, off(R11)

// func spectraAVX(d *Detector, st *[2][8]float64, ref *[2][8]complex128)
//
// spectraGo, one call a sub-block: projectGo two filters a register (the
// powers four), then sum3Go, the same operations on the same operands, so
// the same bits, and
// pickGo of the long window's powers, the window's squared amplitudes and
// its wide-bin powers. go_asm.h gives the Detector's layout.
TEXT ·spectraAVX(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), R10
	MOVQ st+8(FP), AX
	MOVQ ref+16(FP), BX
	// The slot's DFT is 128 bytes a slot into subX, its powers 64 into
	// subP.
	MOVQ Detector_slot(R10), R9
	MOVQ R9, CX
	SHLQ $7, CX
	LEAQ Detector_subX(R10)(CX*1), CX
	MOVQ R9, DX
	SHLQ $6, DX
	LEAQ Detector_subP(R10)(DX*1), DX
	LEAQ Detector_longY(R10), DI
	LEAQ Detector_longP(R10), R8
	LEAQ Detector_longPk(R10), R11
	QUAD(0, 64, 0, 128, 0, 0, Y4)
	QUAD(32, 96, 64, 192, 64, 32, Y6)
	BEST8(Y4, Y6)

	// The window of the sub-blocks in slots win.
	MOVQ Detector_win(R10), AX
	MOVQ Detector_win+8(R10), BX
	MOVQ Detector_win+16(R10), CX
	MOVQ AX, R8
	SHLQ $6, R8
	LEAQ Detector_subP(R10)(R8*1), R8
	MOVQ BX, R9
	SHLQ $6, R9
	LEAQ Detector_subP(R10)(R9*1), R9
	MOVQ CX, SI
	SHLQ $6, SI
	LEAQ Detector_subP(R10)(SI*1), SI
	SHLQ $7, AX
	LEAQ Detector_subX(R10)(AX*1), AX
	SHLQ $7, BX
	LEAQ Detector_subX(R10)(BX*1), BX
	SHLQ $7, CX
	LEAQ Detector_subX(R10)(CX*1), CX
	VBROADCASTSD meas<>+104(SB), Y3 // 4/winLen²
	LEAQ Detector_wx(R10), DI
	LEAQ Detector_wamp2(R10), DX
	LEAQ Detector_wbroad(R10), R11
	SUM4(0, 0, Y4)
	SUM4(64, 32, Y6)
	BROAD(0, Y10)
	BROAD(32, Y11)
	LEAQ Detector_ampPk(R10), R11
	BEST8(Y4, Y6)
	LEAQ Detector_broadPk(R10), R11
	BEST8(Y10, Y11)
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

// func toFloatsAVX(dst *[batchSubs * subLen]float64, src []int16, e *[batchSubs]float64)
//
// toFloat for each whole sub-block of src (len(src)/subLen of them, at
// least one), four samples an instruction. The squares and their sums are
// integers below 2^53, exact in any order, so each energy is toFloat's to
// the bit.
TEXT ·toFloatsAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src_base+8(FP), SI
	MOVQ src_len+16(FP), CX
	MOVQ e+32(FP), DX
	SHRQ $5, CX

tfsub:
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
	VMOVSD       X2, (DX)
	ADDQ $64, SI
	ADDQ $256, DI
	ADDQ $8, DX
	DECQ CX
	JNZ  tfsub
	VZEROUPPER
	RET

// Constants of measureAVX: measureGo's, to the bit.
DATA meas<>+0(SB)/8, $0x8000000000000000   // sign bit
DATA meas<>+8(SB)/8, $0xbf709afce86ada61   // atan2's coefficients: -0.0040540580
DATA meas<>+16(SB)/8, $0x3f9662ca3afc494a  // 0.0218612288
DATA meas<>+24(SB)/8, $0x3faca03878a529dc  // 0.0559098861
DATA meas<>+32(SB)/8, $0x3fb8aefbe8169fed  // 0.0964200441
DATA meas<>+40(SB)/8, $0x3fc1cd8c5acdc925  // 0.1390853351
DATA meas<>+48(SB)/8, $0x3fc98814b6ba498f  // 0.1994653599
DATA meas<>+56(SB)/8, $0x3fd554c37c49b02b  // 0.3332985605
DATA meas<>+64(SB)/8, $0x3ff921fb54442d18  // π/2
DATA meas<>+72(SB)/8, $0x400921fb54442d18  // π
DATA meas<>+80(SB)/8, $0x40bf400000000000  // SampleRate
DATA meas<>+88(SB)/8, $0x406921fb54442d18  // 2π·hop
DATA meas<>+96(SB)/8, $0x3fcf400000000000  // gainStep
DATA meas<>+104(SB)/8, $0x3f3c71c71c71c71c // 4/winLen²
DATA meas<>+112(SB)/8, $0x3fd0000000000000 // 0.25
DATA meas<>+120(SB)/8, $0x3fe0000000000000 // 0.5
DATA meas<>+128(SB)/8, $0x3ff0000000000000 // 1
DATA meas<>+136(SB)/4, $512                // gainSteps/2, int32
DATA meas<>+140(SB)/4, $1024               // gainSteps, int32
DATA meas<>+144(SB)/8, $0x3fb999999999999a // 0.1, gain2's floor
GLOBL meas<>(SB), RODATA|NOPTR, $152

// GATHERZ loads the four lanes' z at base: real parts into re, imaginary
// into im (lower half xim), through t (xt). AX, BX, CX and DX hold the
// lanes' byte offsets.
#define GATHERZ(base, re, im, xim, t, xt) \
	VMOVUPD     (base)(AX*1), xt; \
	VINSERTF128 $1, (base)(CX*1), t, t; \
	VMOVUPD     (base)(BX*1), xim; \
	VINSERTF128 $1, (base)(DX*1), im, im; \
	VUNPCKLPD   im, t, re; \
	VUNPCKHPD   im, t, im

// GATHER8 loads the four lanes' float64 at base into v (xv), through xt;
// AX to DX hold the lanes' byte offsets.
#define GATHER8(base, v, xv, xt) \
	VMOVSD      (base)(AX*1), xv; \
	VMOVHPD     (base)(BX*1), xv, xv; \
	VMOVSD      (base)(CX*1), xt; \
	VMOVHPD     (base)(DX*1), xt, xt; \
	VINSERTF128 $1, xt, v, v

// POLY is one step of atan2's polynomial in Y13, s in Y12: t = t*s op c.
#define POLY(op, c) \
	VMULPD       Y12, Y13, Y13; \
	VBROADCASTSD meas<>+c(SB), Y14; \
	op           Y14, Y13, Y13

// ATAN2 is offsetHz of the four z in Y8 (real) and Y9 (imaginary), into
// Y13: atan2's branches as blends, in its order (0 for z = 0); Y15
// holds the sign bit. It clobbers Y6, Y7, Y11, Y12 and Y14.
#define ATAN2 \
	VANDNPD      Y8, Y15, Y6; \
	VANDNPD      Y9, Y15, Y7; \
	VMINPD       Y7, Y6, Y11; \
	VMAXPD       Y7, Y6, Y12; \
	VDIVPD       Y12, Y11, Y11; \
	VMULPD       Y11, Y11, Y12; \
	VBROADCASTSD meas<>+8(SB), Y13; \
	VMULPD       Y12, Y13, Y13; \
	VBROADCASTSD meas<>+16(SB), Y14; \
	VADDPD       Y14, Y13, Y13; \
	POLY(VSUBPD, 24); \
	POLY(VADDPD, 32); \
	POLY(VSUBPD, 40); \
	POLY(VADDPD, 48); \
	POLY(VSUBPD, 56); \
	VMULPD       Y12, Y13, Y13; \
	VMULPD       Y11, Y13, Y13; \
	VADDPD       Y11, Y13, Y13; \
	VCMPPD       $1, Y7, Y6, Y11; \
	VBROADCASTSD meas<>+64(SB), Y12; \
	VSUBPD       Y13, Y12, Y12; \
	VBLENDVPD    Y11, Y12, Y13, Y13; \
	VXORPD       Y14, Y14, Y14; \
	VCMPPD       $1, Y14, Y8, Y11; \
	VBROADCASTSD meas<>+72(SB), Y12; \
	VSUBPD       Y13, Y12, Y12; \
	VBLENDVPD    Y11, Y12, Y13, Y13; \
	VCMPPD       $1, Y14, Y9, Y11; \
	VANDPD       Y15, Y11, Y11; \
	VXORPD       Y11, Y13, Y13; \
	VMAXPD       Y7, Y6, Y11; \
	VCMPPD       $0, Y14, Y11, Y11; \
	VANDNPD      Y13, Y11, Y13; \
	VBROADCASTSD meas<>+80(SB), Y12; \
	VMULPD       Y12, Y13, Y13; \
	VBROADCASTSD meas<>+88(SB), Y12; \
	VDIVPD       Y12, Y13, Y13

// RESPIDX is respIndex of the four offsets in f, into xt, through q, t,
// u, v and xu; Y15 holds the sign bit. math.Round is the truncation and,
// when the fraction left (exact) is a half or more, a step away from
// zero.
#define RESPIDX(f, q, t, u, v, xt, xu) \
	VBROADCASTSD meas<>+96(SB), q; \
	VDIVPD       q, f, q; \
	VROUNDPD     $3, q, t; \
	VSUBPD       t, q, u; \
	VANDNPD      u, Y15, u; \
	VBROADCASTSD meas<>+120(SB), v; \
	VCMPPD       $13, v, u, u; \
	VBROADCASTSD meas<>+128(SB), v; \
	VANDPD       v, u, u; \
	VANDPD       Y15, q, q; \
	VORPD        q, u, u; \
	VADDPD       u, t, t; \
	VCVTTPD2DQY  t, xt; \
	VBROADCASTSS meas<>+136(SB), xu; \
	VPADDD       xu, xt, xt; \
	VPXOR        xu, xu, xu; \
	VPMAXSD      xu, xt, xt; \
	VBROADCASTSS meas<>+140(SB), xu; \
	VPMINSD      xu, xt, xt

// func offsetsAVX(z *[2]complex128, df, gain *[2]float64)
//
// offsetsGo two tones a register: offsetHz by ATAN2, gain2 by RESPIDX.
TEXT ·offsetsAVX(SB), NOSPLIT, $0-24
	MOVQ z+0(FP), AX
	VMOVUPD   0(AX), X0
	VMOVUPD   16(AX), X1
	VUNPCKLPD X1, X0, X8
	VUNPCKHPD X1, X0, X9
	VBROADCASTSD meas<>+0(SB), Y15
	ATAN2
	MOVQ df+8(FP), AX
	VMOVUPD X13, (AX)
	RESPIDX(Y13, Y4, Y5, Y6, Y0, X5, X6)
	VMOVD   X5, AX
	VPEXTRD $1, X5, BX
	SHLQ    $4, AX
	SHLQ    $4, BX
	LEAQ    ·respTable(SB), R11
	VMOVSD  (R11)(AX*1), X0
	VMOVHPD (R11)(BX*1), X0, X0
	VMOVDDUP meas<>+144(SB), X1
	VMAXPD  X1, X0, X0
	MOVQ    gain+16(FP), AX
	VMOVUPD X0, (AX)
	VZEROUPPER
	RET

// func respIndexAVX(f *[4]float64, i *[4]int32)
//
// RESPIDX alone, for its test.
TEXT ·respIndexAVX(SB), NOSPLIT, $0-16
	MOVQ f+0(FP), AX
	VMOVUPD (AX), Y13
	VBROADCASTSD meas<>+0(SB), Y15
	RESPIDX(Y13, Y4, Y5, Y6, Y0, X5, X6)
	MOVQ i+8(FP), AX
	VMOVDQU X5, (AX)
	VZEROUPPER
	RET

// func measureAVX(subX *[longSubs][8]complex128, win *[winSubs]int, amp2 *[8]float64, k *[4]int, t *tones)
//
// measureGo at four bins at once, one a lane: the same operations in the
// same order (complex products as Go computes them, atan2's branches as
// blends, math.Round as truncation and a step away from zero), so the
// same bits in every lane that holds a tone. A lane that does not may
// hold anything but its bit in t.ok.
TEXT ·measureAVX(SB), NOSPLIT, $0-40
	MOVQ win+8(FP), SI
	MOVQ 0(SI), R8
	MOVQ 8(SI), R9
	MOVQ 16(SI), R10
	// Sub-block j's DFT is 128 bytes into subX.
	MOVQ subX+0(FP), SI
	SHLQ $7, R8
	ADDQ SI, R8
	SHLQ $7, R9
	ADDQ SI, R9
	SHLQ $7, R10
	ADDQ SI, R10
	MOVQ k+24(FP), SI
	MOVQ 0(SI), AX
	MOVQ 8(SI), BX
	MOVQ 16(SI), CX
	MOVQ 24(SI), DX
	SHLQ $4, AX
	SHLQ $4, BX
	SHLQ $4, CX
	SHLQ $4, DX
	GATHERZ(R8, Y0, Y1, X1, Y6, X6)   // z0
	GATHERZ(R9, Y2, Y3, X3, Y6, X6)   // z1
	GATHERZ(R10, Y4, Y5, X5, Y6, X6)  // z2
	VBROADCASTSD meas<>+0(SB), Y15

	// z = z1·conj(z0) + z2·conj(z1), conj(z) = (re, n) with n = -im.
	VXORPD Y15, Y1, Y6 // n0
	VXORPD Y15, Y3, Y7 // n1
	VMULPD Y0, Y2, Y8  // r1·r0
	VMULPD Y6, Y3, Y9  // i1·n0
	VSUBPD Y9, Y8, Y8
	VMULPD Y6, Y2, Y9  // r1·n0
	VMULPD Y0, Y3, Y10 // i1·r0
	VADDPD Y10, Y9, Y9
	VMULPD Y2, Y4, Y10 // r2·r1
	VMULPD Y7, Y5, Y11 // i2·n1
	VSUBPD Y11, Y10, Y10
	VMULPD Y7, Y4, Y11 // r2·n1
	VMULPD Y2, Y5, Y12 // i2·r1
	VADDPD Y12, Y11, Y11
	VADDPD Y10, Y8, Y8 // zr
	VADDPD Y11, Y9, Y9 // zi

	// az = |z|; a lane with az = 0 holds no tone.
	VMULPD  Y8, Y8, Y10
	VMULPD  Y9, Y9, Y11
	VADDPD  Y11, Y10, Y10
	VSQRTPD Y10, Y10
	VXORPD  Y14, Y14, Y14
	VCMPPD  $4, Y14, Y10, Y11 // az != 0
	VMOVMSKPD Y11, R12

	ATAN2
	MOVQ amp2+16(FP), DI
	MOVQ t+32(FP), SI
	VMOVUPD Y13, 32(SI)

	// |f| > toneLim[k]: no tone. The float64 tables want the bins ×8.
	SHRQ $1, AX
	SHRQ $1, BX
	SHRQ $1, CX
	SHRQ $1, DX
	LEAQ ·toneLim(SB), R11
	GATHER8(R11, Y11, X11, X12)
	VANDNPD   Y13, Y15, Y12
	VCMPPD    $1, Y12, Y11, Y11
	VMOVMSKPD Y11, R13
	NOTQ      R13
	ANDQ      R13, R12
	GATHER8(DI, Y7, X7, X12) // amp2[k]

	// u = conj(z)/az, x = z0 + u·(z1 + u·z2).
	VDIVPD Y10, Y8, Y8  // ur
	VXORPD Y15, Y9, Y9
	VDIVPD Y10, Y9, Y9  // ui
	VMULPD Y8, Y4, Y6   // r2·ur
	VMULPD Y9, Y5, Y10  // i2·ui
	VSUBPD Y10, Y6, Y6
	VMULPD Y8, Y5, Y10  // i2·ur
	VMULPD Y9, Y4, Y11  // r2·ui
	VADDPD Y11, Y10, Y10
	VADDPD Y2, Y6, Y6   // t2r
	VADDPD Y3, Y10, Y10 // t2i
	VMULPD Y8, Y6, Y2   // t2r·ur
	VMULPD Y9, Y10, Y3  // t2i·ui
	VSUBPD Y3, Y2, Y2
	VMULPD Y8, Y10, Y3  // t2i·ur
	VMULPD Y9, Y6, Y4   // t2r·ui
	VADDPD Y4, Y3, Y3
	VADDPD Y0, Y2, Y2   // xr
	VADDPD Y1, Y3, Y3   // xi
	VMULPD Y2, Y2, Y2
	VMULPD Y3, Y3, Y3
	VADDPD Y3, Y2, Y2
	VBROADCASTSD meas<>+104(SB), Y4
	VMULPD Y4, Y2, Y2 // |x|²·4/winLen²

	// response(f): i = round(f/gainStep) + gainSteps/2 within the table.
	RESPIDX(Y13, Y4, Y5, Y6, Y0, X5, X6)
	VMOVD    X5, AX
	VPEXTRD  $1, X5, BX
	VPEXTRD  $2, X5, CX
	VPEXTRD  $3, X5, DX
	SHLQ     $4, AX
	SHLQ     $4, BX
	SHLQ     $4, CX
	SHLQ     $4, DX
	LEAQ     ·respTable(SB), R11
	GATHERZ(R11, Y0, Y1, X1, Y6, X6) // win, sub

	// p = |x|²·4/winLen²/sub; amp2[k] < 0.25·p·win: no tone.
	VDIVPD    Y1, Y2, Y2
	VMOVUPD   Y2, 0(SI)
	VBROADCASTSD meas<>+112(SB), Y3
	VMULPD    Y2, Y3, Y3
	VMULPD    Y0, Y3, Y3
	VCMPPD    $1, Y3, Y7, Y3
	VMOVMSKPD Y3, R13
	NOTQ      R13
	ANDQ      R13, R12
	MOVQ      R12, 64(SI)
	VZEROUPPER
	RET

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/tonevault/tonevault/internal/panics"
)

// The io_uring engine. Each ring has one locked OS thread that keeps a
// multishot receive armed on every socket of its sessions, handles each
// completion with the same packet functions the goroutine loops use, and
// queues the resulting send on the ring; one io_uring_enter per loop
// submits all of them and waits for the next completions. The syscalls
// and wake-ups per packet go, the kernel's own UDP work stays.
//
// What each part is worth was measured one at a time (BENCHMARKS.md):
//   - sessions fill one ring before the next gets any: a ring thread
//     blocks in io_uring_enter holding its P, and when every P is so
//     held the runtime's sysmon takes them back and polls every 20 µs;
//     at 50 calls on two rings that cost more than the relaying did. A
//     ring without sessions sleeps for good, its P goes back to the
//     scheduler, and the busy ring's waits are left alone;
//   - multishot receives into a ring of provided buffers: no submission,
//     no failed first try and no poll arming per packet;
//   - sends with the destination in the entry (IORING_OP_SEND with
//     addr2): no msghdr and iovec to copy in;
//   - the sockets in the ring's table of fixed files: no reference taken
//     on the file per operation;
//   - a busy ring's goroutine yields every 5 ms (yieldEvery), so that
//     sysmon does not take its P as a long-running goroutine's.
//
// Waiting for several completions with a timeout (IORING_ENTER_EXT_ARG)
// and sleeping between batches were measured too and are not used: a
// socket's poll wake-up always wakes the waiting thread, whatever count
// it waits for, so both only added latency.
//
// Nothing here is reached from outside the ring thread but post, which
// queues a command and wakes the thread through an eventfd.
//
// A ring that fails (io_uring_enter refused, or a panic on its thread
// outside a session's own packet handling, which Session.relay recovers)
// ends its own sessions and no others: each gets ErrRingFailed, which
// package sip turns into a BYE on both legs. The ring is retired, new
// sessions go to the rings left, and once none is left to the goroutine
// engine. A failed ring is not replaced: what made it fail (the kernel
// refusing the ring, a bug in this file) would likely fail the next one.

// Kernel ABI (include/uapi/linux/io_uring.h).
const (
	sysIOUringSetup    = 425
	sysIOUringEnter    = 426
	sysIOUringRegister = 427

	setupCQSize       = 1 << 3
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13
	featSingleMmap    = 1 << 0
	featRegRegRing    = 1 << 13 // 6.3: implies multishot recvmsg and send with an address (6.0)
	enterGetEvents    = 1 << 0

	sqeBufferSelect = 1 << 5
	recvMultishot   = 1 << 1 // in ioprio
	cqeFBuffer      = 1 << 0
	cqeFMore        = 1 << 1
	cqeBufferShift  = 16

	registerPbufRing    = 22
	registerFilesUpdate = 6
	registerFiles2      = 13
	rsrcRegisterSparse  = 1 << 0
	sqeFixedFile        = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	opRecvmsg     = 10
	opAsyncCancel = 14
	opRead        = 22
	opSend        = 26
)

type uringParams struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  [10]uint32 // head tail ring_mask ring_entries flags dropped array resv1 user_addr(u64)
	cqOff                                                                  [10]uint32 // head tail ring_mask ring_entries overflow cqes flags resv1 user_addr(u64)
}

type uringSQE struct {
	opcode   uint8
	flags    uint8
	ioprio   uint16
	fd       int32
	off      uint64
	addr     uint64
	len      uint32
	opFlags  uint32
	userData uint64
	bufIndex uint16
	pers     uint16
	spliceFd int32
	addr3    uint64
	_        uint64
}

type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// user_data: slot index << 8 | operation.
const (
	udRecv   = 1
	udSend   = 2
	udCancel = 3
	udWake   = 4
)

const (
	ringSQ = 4096
	ringCQ = 32768
	bufLen = recvBuf

	// The provided buffers every receive of a ring draws from.
	nBufs    = 4096
	nameRoom = unix.SizeofSockaddrInet6 // source address space in a multishot buffer
	recvOut  = 16                       // struct io_uring_recvmsg_out
)

// nFixed is the size of a ring's table of fixed files: a slot below it
// has its socket there, so that a send or a receive names the socket by
// its slot and the kernel takes no reference on the file per operation
// (fget was 2 % of the relay's samples at 500 calls). perRing sessions
// use 4 slots each, their forks 2 more; a slot past the table, or a ring
// whose kernel refuses the table, uses the plain descriptor.
const nFixed = 4096

// struct io_uring_rsrc_register and struct io_uring_files_update.
type rsrcRegister struct {
	nr, flags         uint32
	resv2, data, tags uint64
}

type filesUpdate struct {
	offset, resv uint32
	fds          uint64
}

type bufReg struct {
	ringAddr    uint64
	ringEntries uint32
	bgid        uint16
	flags       uint16
	resv        [3]uint64
}

// uringEngine has a ring per P, at most 4, and fills them in order.
type uringEngine struct {
	rings   []*ring
	perRing int32 // perRing, but tests spread sessions across rings with fewer
	sched   ringSched
	loops   loopsEngine
	log     *zap.Logger
	m       *metrics
}

// perRing is how many sessions a ring takes before the next one gets
// any. A ring batches more the more calls it carries: on a 2-core VM one
// ring relayed 1000 calls at 5.2–6.0 µs a packet, two rings of 500 at
// 6.9–7.2 µs. But one thread gets one share of a contended machine: with
// other work running, one ring of 1000 calls fell behind (p50 28–361 ms,
// once 22 % lost) where two rings of 500 did not; and at 500 calls a
// second ring bought no latency (BENCHMARKS.md).
const perRing = 500

func newUringEngine(sc ringSched, log *zap.Logger, m *metrics) (ioEngine, error) {
	return newUringEngineN(min(max(runtime.GOMAXPROCS(0), 1), 4), sc, log, m)
}

func newUringEngineN(n int, sc ringSched, log *zap.Logger, m *metrics) (*uringEngine, error) {
	e := &uringEngine{perRing: perRing, sched: sc, log: log, m: m}
	for i := range n {
		r, err := newRing(e, i)
		if err != nil {
			e.close()
			return nil, err
		}
		e.rings = append(e.rings, r)
	}
	return e, nil
}

func (e *uringEngine) name() string { return IOUring }

// raw holds while a ring is left.
func (e *uringEngine) raw() bool { return e.live() > 0 }

// live is the number of rings that have not failed.
func (e *uringEngine) live() int {
	n := 0
	for _, r := range e.rings {
		if !r.retired.Load() {
			n++
		}
	}
	return n
}

func (e *uringEngine) start(s *Session) {
	if !s.pairs[Carrier].rtp.raw {
		// Opened once no ring was left.
		e.loops.start(s)
		return
	}
	for {
		r := e.pick()
		if r == nil {
			// The last ring failed since this session's sockets were
			// made for it: the goroutines take them over.
			if err := s.adopt(); err != nil {
				e.log.Error("media: no io_uring ring left and the session's sockets could not move to goroutines", zap.String("call_id", s.callID), zap.Error(err))
				s.ringFailed()
				return
			}
			e.loops.start(s)
			return
		}
		r.load.Add(1)
		s.ring = r
		if r.post(ringCmd{start: s}) {
			return
		}
		// It failed since pick: the next one.
		r.load.Add(-1)
		s.ring = nil
	}
}

// pick is the first ring with room, else the least loaded; nil when
// every ring has failed.
func (e *uringEngine) pick() *ring {
	var best *ring
	for _, r := range e.rings {
		if r.retired.Load() {
			continue
		}
		n := r.load.Load()
		if n < e.perRing {
			return r
		}
		if best == nil || n < best.load.Load() {
			best = r
		}
	}
	return best
}

func (e *uringEngine) stop(s *Session) {
	r, _ := s.ring.(*ring)
	if r == nil {
		e.loops.stop(s)
		return
	}
	done := make(chan struct{})
	r.post(ringCmd{stop: s, done: done}) // a failed ring closes done at once
	<-done
	r.load.Add(-1)
}

// startFork puts a fork's sockets on its session's ring, as send-only
// slots: they are never read.
func (e *uringEngine) startFork(rec *Recording) error {
	r, _ := rec.s.ring.(*ring)
	if r == nil {
		return e.loops.startFork(rec)
	}
	done := make(chan struct{})
	r.post(ringCmd{fork: rec, done: done}) // a failed ring closes done at once
	<-done
	if !rec.onRing {
		return ErrRingFailed
	}
	return nil
}

func (e *uringEngine) stopFork(rec *Recording) {
	r, _ := rec.s.ring.(*ring)
	if r == nil || !rec.onRing {
		e.loops.stopFork(rec)
		return
	}
	done := make(chan struct{})
	r.post(ringCmd{unfork: rec, done: done})
	<-done
}

func (e *uringEngine) close() {
	for _, r := range e.rings {
		done := make(chan struct{})
		r.post(ringCmd{quit: true, done: done})
		<-done
	}
}

type ringCmd struct {
	start, stop  *Session
	fork, unfork *Recording
	quit         bool
	done         chan struct{}
}

// usock is one socket on a ring, with what the kernel reads while its
// operations are in flight: the receive's message header and the send's
// packet and destination.
type usock struct {
	s        *Session
	fd       int
	leg      Leg
	rtcp     bool
	self     int // this socket's slot
	peer     int // slot of the socket this one's packets leave by
	recvOn   bool
	sendOn   bool
	stopping bool

	// A recording fork's socket: it only sends, and its sends' results
	// are counted as the fork's.
	rec    *Recording
	stream forkStream

	fixed bool // in the ring's table of fixed files, at index self

	rmsg unix.Msghdr
	from [nameRoom]byte // rmsg's name: multishot writes the buffer's instead
	// The destination of the last send from sbuf, encoded: a call's
	// packets nearly always go to the same address, so it is encoded
	// again only when that changes.
	to     [unix.SizeofSockaddrInet6]byte
	toLen  uint32
	toAddr netip.AddrPort
	sbuf   [MaxPacket]byte
}

type ring struct {
	e                      *uringEngine
	id                     int // its index in the engine, for the log
	retired                atomic.Bool
	fd                     int
	sqHead, sqTail, sqMask *uint32
	sqes                   []uringSQE
	cqHead, cqTail, cqMask *uint32
	cqes                   []uringCQE
	pending                uint32
	maps                   [][]byte

	load atomic.Int32 // sessions started and not stopped, for pick

	efd     int
	efdBuf  [8]byte
	mu      sync.Mutex
	dead    bool // the loop has ended: post answers at once
	cmds    []ringCmd
	running []ringCmd // the loop's copy of cmds

	slots    []*usock
	free     []int
	sessions map[*Session]*ringSession
	forks    map[*Recording]*ringFork

	scratch [MaxPacket]byte
	fk      forkOut // the copy for a recording fork of the packet in hand
	fkBuf   [MaxPacket]byte
	digits  []Digit
	quit    *ringCmd
	now     time.Time // when the batch being reaped was taken
	tid     int       // the ring's thread, set before newRing returns

	pbufRing []byte // the provided-buffer ring's entries
	bufs     []byte // nBufs buffers of bufLen bytes
	pbufTail uint16
	nFixed   int // the table of fixed files' size: 0 without one
}

// ringSession is a session's four slots and who waits for its stop.
type ringSession struct {
	slots [4]int
	done  chan struct{}
}

// ringFork is a recording fork's two sending slots and who waits for
// its stop.
type ringFork struct {
	slots [2]int
	done  chan struct{}
}

// newRing sets a ring up on the thread that will drive it: a ring with
// a single issuer belongs to the thread that created it.
func newRing(e *uringEngine, id int) (*ring, error) {
	r := &ring{e: e, id: id, fd: -1, efd: -1, sessions: make(map[*Session]*ringSession), forks: make(map[*Recording]*ringFork)}
	r.fk.buf = r.fkBuf[:]
	started := make(chan error)
	go r.loop(started)
	if err := <-started; err != nil {
		return nil, err
	}
	return r, nil
}

func (r *ring) setup() error {
	var p uringParams
	p.cqEntries = ringCQ
	p.flags = setupCQSize | setupSingleIssuer | setupDeferTaskrun
	fd, _, errno := unix.Syscall(sysIOUringSetup, ringSQ, uintptr(unsafe.Pointer(&p)), 0)
	if errno != 0 {
		// EINVAL before 6.1 (no single issuer, no deferred task work):
		// the goroutines relay there.
		return fmt.Errorf("io_uring_setup: %w", errno)
	}
	r.fd = int(fd)
	if p.features&featRegRegRing == 0 {
		r.release()
		return errors.New("io_uring: kernel before 6.3 (no multishot recvmsg or send with an address)")
	}
	if err := r.mapRings(&p); err != nil {
		r.release()
		return err
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		r.release()
		return fmt.Errorf("eventfd: %w", err)
	}
	r.efd = efd
	if err := r.setupBufs(); err != nil {
		r.release()
		return err
	}
	r.setupFixed()
	return nil
}

// setupFixed registers an empty table of fixed files. Without it (a
// kernel or a file limit that refuses it) the sockets go by descriptor:
// slower, not wrong.
func (r *ring) setupFixed() {
	reg := rsrcRegister{nr: nFixed, flags: rsrcRegisterSparse}
	if _, _, errno := unix.Syscall6(sysIOUringRegister, uintptr(r.fd), registerFiles2, uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0, 0); errno == 0 {
		r.nFixed = nFixed
	}
}

// fix puts fd in the table of fixed files at slot i, or with fd -1 takes
// slot i's socket out, and reports whether the table holds it. A socket
// must be taken out before it is closed: the table holds a reference that
// keeps it, and its port, open.
func (r *ring) fix(i, fd int) bool {
	if i >= r.nFixed {
		return false
	}
	fds := [1]int32{int32(fd)}
	up := filesUpdate{offset: uint32(i), fds: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	n, _, errno := unix.Syscall6(sysIOUringRegister, uintptr(r.fd), registerFilesUpdate, uintptr(unsafe.Pointer(&up)), 1, 0, 0)
	runtime.KeepAlive(&fds)
	return errno == 0 && n == 1 && fd >= 0
}

// file is how an entry names u's socket.
func (u *usock) file() (int32, uint8) {
	if u.fixed {
		return int32(u.self), sqeFixedFile
	}
	return int32(u.fd), 0
}

// unfix takes slot i's socket out of the table before the slot is freed.
func (r *ring) unfix(i int) {
	if u := r.slots[i]; u.fixed {
		r.fix(i, -1)
		u.fixed = false
	}
}

// setupBufs registers the ring of buffers receives select from.
func (r *ring) setupBufs() error {
	anon := func(size int) ([]byte, error) {
		return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANONYMOUS|unix.MAP_PRIVATE)
	}
	var err error
	if r.pbufRing, err = anon(nBufs * 16); err != nil {
		return fmt.Errorf("buffer ring: %w", err)
	}
	if r.bufs, err = anon(nBufs * bufLen); err != nil {
		return fmt.Errorf("buffers: %w", err)
	}
	reg := bufReg{ringAddr: uint64(uintptr(unsafe.Pointer(&r.pbufRing[0]))), ringEntries: nBufs}
	if _, _, errno := unix.Syscall6(sysIOUringRegister, uintptr(r.fd), registerPbufRing, uintptr(unsafe.Pointer(&reg)), 1, 0, 0); errno != 0 {
		return fmt.Errorf("io_uring_register buffer ring: %w", errno)
	}
	for i := range nBufs {
		r.provide(uint16(i))
	}
	r.publishBufs()
	return nil
}

// provide puts buffer bid back on the ring; publishBufs makes what was
// provided visible to the kernel.
func (r *ring) provide(bid uint16) {
	e := r.pbufRing[int(r.pbufTail&(nBufs-1))*16:]
	binary.NativeEndian.PutUint64(e, uint64(uintptr(unsafe.Pointer(&r.bufs[int(bid)*bufLen]))))
	binary.NativeEndian.PutUint32(e[8:], bufLen)
	binary.NativeEndian.PutUint16(e[12:], bid)
	r.pbufTail++
}

func (r *ring) publishBufs() {
	// The tail is the u16 at offset 14, beside entry 0's bid: one 32-bit
	// store with release order writes both, bid unchanged.
	w := (*uint32)(unsafe.Pointer(&r.pbufRing[12]))
	bid0 := binary.NativeEndian.Uint16(r.pbufRing[12:])
	atomic.StoreUint32(w, uint32(bid0)|uint32(r.pbufTail)<<16)
}

func (r *ring) mapRings(p *uringParams) error {
	sqSize := int(p.sqOff[6] + p.sqEntries*4)
	cqSize := int(p.cqOff[5] + p.cqEntries*uint32(unsafe.Sizeof(uringCQE{})))
	mmap := func(off int64, size int) ([]byte, error) {
		b, err := unix.Mmap(r.fd, off, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("io_uring mmap: %w", err)
		}
		r.maps = append(r.maps, b)
		return b, nil
	}
	var sq, cq []byte
	var err error
	if p.features&featSingleMmap != 0 {
		if sq, err = mmap(offSQRing, max(sqSize, cqSize)); err != nil {
			return err
		}
		cq = sq
	} else {
		if sq, err = mmap(offSQRing, sqSize); err != nil {
			return err
		}
		if cq, err = mmap(offCQRing, cqSize); err != nil {
			return err
		}
	}
	sqes, err := mmap(offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})))
	if err != nil {
		return err
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(sq, p.sqOff[0]), u32(sq, p.sqOff[1]), u32(sq, p.sqOff[2])
	// The SQ array maps ring positions to SQEs: the identity, once.
	arr := unsafe.Slice((*uint32)(unsafe.Pointer(&sq[p.sqOff[6]])), p.sqEntries)
	for i := range arr {
		arr[i] = uint32(i)
	}
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&sqes[0])), p.sqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(cq, p.cqOff[0]), u32(cq, p.cqOff[1]), u32(cq, p.cqOff[2])
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff[5]])), p.cqEntries)
	return nil
}

func (r *ring) release() {
	for _, b := range r.maps {
		unix.Munmap(b)
	}
	r.maps = nil
	for _, b := range [][]byte{r.pbufRing, r.bufs} {
		if b != nil {
			unix.Munmap(b)
		}
	}
	r.pbufRing, r.bufs = nil, nil
	if r.efd >= 0 {
		unix.Close(r.efd)
	}
	if r.fd >= 0 {
		unix.Close(r.fd)
	}
}

// post queues a command for the ring thread and wakes it, and reports
// whether it did: on a ring whose loop has ended (quit, failed) it
// closes the command's done and returns false. The wake-up is written
// under mu, so it never reaches an eventfd the ended loop closed.
func (r *ring) post(c ringCmd) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		if c.done != nil {
			close(c.done)
		}
		return false
	}
	r.cmds = append(r.cmds, c)
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		if _, err := unix.Write(r.efd, one[:]); err != unix.EINTR {
			return true
		}
	}
}

// sqe returns the next free submission entry, submitting what is queued
// when the ring is full.
func (r *ring) sqe() *uringSQE {
	for {
		tail := atomic.LoadUint32(r.sqTail) + r.pending
		if tail-atomic.LoadUint32(r.sqHead) < uint32(len(r.sqes)) {
			e := &r.sqes[tail&*r.sqMask]
			*e = uringSQE{}
			r.pending++
			return e
		}
		r.enter(0)
	}
}

// enter submits the queued entries and, with wait, blocks for at least
// one completion.
func (r *ring) enter(wait uint32) {
	tail := atomic.LoadUint32(r.sqTail) + r.pending
	atomic.StoreUint32(r.sqTail, tail)
	r.pending = 0
	var flags uintptr
	if wait > 0 {
		flags = enterGetEvents
	}
	for {
		// Everything the kernel has not consumed yet, including what an
		// interrupted or refused call left behind.
		n := tail - atomic.LoadUint32(r.sqHead)
		var errno unix.Errno
		if h := testRingFault.Load(); h != nil {
			errno = (*h)(r)
		}
		if errno == 0 {
			_, _, errno = unix.Syscall6(sysIOUringEnter, uintptr(r.fd), uintptr(n), uintptr(wait), flags, 0, 0)
		}
		switch errno {
		case 0:
			return
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EBUSY:
			// Completions not reaped yet fill the queue: the loop reaps
			// them and comes back.
			return
		}
		// The ring itself failed: none of its sockets can be read or
		// masked any more, and relaying unmasked is not an option. Its
		// loop ends the ring and its sessions (fail).
		panic(enterError{errno})
	}
}

// enterError is io_uring_enter failing: it unwinds the ring's thread
// from wherever it entered (a full submission queue, the loop) to run,
// which fails the ring.
type enterError struct{ errno unix.Errno }

func (e enterError) Error() string { return "io_uring_enter: " + e.errno.Error() }

// testRingFault, when set, is asked before every io_uring_enter of every
// ring: a non-zero errno stands for the syscall's own, and a panic in it
// is one on the ring's thread. Only tests set it (export_test.go).
var testRingFault atomic.Pointer[func(r *ring) unix.Errno]

func (r *ring) armWake() {
	e := r.sqe()
	e.opcode, e.fd = opRead, int32(r.efd)
	e.addr, e.len = uint64(uintptr(unsafe.Pointer(&r.efdBuf[0]))), 8
	e.off = ^uint64(0)
	e.userData = udWake
}

// armRecv arms slot i's multishot receive: it stays armed, each datagram
// landing in a buffer the kernel picks from the ring, source address
// included, until an error or a cancel ends it.
func (r *ring) armRecv(i int) {
	u := r.slots[i]
	e := r.sqe()
	fd, ff := u.file()
	e.opcode, e.fd = opRecvmsg, fd
	e.addr, e.len = uint64(uintptr(unsafe.Pointer(&u.rmsg))), 1
	e.flags = sqeBufferSelect | ff
	e.ioprio = recvMultishot
	e.userData = uint64(i)<<8 | udRecv
	u.recvOn = true
}

func (r *ring) loop(started chan<- error) {
	// Single issuer: every submission from this one thread.
	runtime.LockOSThread()
	r.tid = unix.Gettid()
	// The thread ends with this goroutine (it never unlocks), so its
	// scheduling goes nowhere else.
	if err := r.e.sched.apply(); err != nil {
		started <- err
		return
	}
	if err := r.setup(); err != nil {
		started <- err
		return
	}
	r.armWake()
	started <- nil
	if !r.run() {
		return // failed: the thread, still locked, ends with the goroutine
	}
	r.mu.Lock()
	r.dead = true
	late := r.cmds
	r.cmds = nil
	r.mu.Unlock()
	r.release()
	close(r.quit.done)
	for _, c := range late {
		if c.done != nil && c.done != r.quit.done {
			close(c.done)
		}
	}
}

// apply sets the calling thread's scheduling, and keeps it from the
// threads it may start (SCHED_FLAG_RESET_ON_FORK). The default is left
// alone: the thread has it already, and the call needs no privilege.
func (s ringSched) apply() error {
	if s.isDefault() {
		return nil
	}
	a := unix.SchedAttr{Size: unix.SizeofSchedAttr, Flags: unix.SCHED_FLAG_RESET_ON_FORK}
	switch s.policy() {
	case SchedFIFO:
		a.Policy, a.Priority = unix.SCHED_FIFO, uint32(s.prio)
	case SchedRR:
		a.Policy, a.Priority = unix.SCHED_RR, uint32(s.prio)
	default:
		a.Policy, a.Nice = unix.SCHED_NORMAL, int32(s.prio)
	}
	if err := unix.SchedSetAttr(0, &a, 0); err != nil {
		hint := ""
		if errors.Is(err, unix.EPERM) {
			hint = " (it needs CAP_SYS_NICE, e.g. systemd's AmbientCapabilities=CAP_SYS_NICE, or a raised RLIMIT_NICE or RLIMIT_RTPRIO; or leave both keys out)"
		}
		return fmt.Errorf("%w: media.ring_scheduling %s, media.ring_priority %d: %v%s", errRingSched, s.policy(), s.prio, err, hint)
	}
	return nil
}

// yieldEvery is how often a busy ring's goroutine goes through the
// scheduler. It never does otherwise: it only loops between io_uring_enter
// and its completions. The runtime's sysmon takes such a goroutine for one
// that has run 10 ms without a reschedule, and since it is in a syscall
// more often than not, sysmon takes its P away, which sets sysmon itself
// polling every 20 µs again for the next millisecond: at 500 calls that
// was 4 % of the relay's CPU, and the P retaken was a stall on the packet
// path. A yield every 5 ms costs two thread switches; perf shows sysmon
// fall from 5.8 % to 1.2 % of the relay's samples (BENCHMARKS.md).
const yieldEvery = 5 * time.Millisecond

// run drives the ring until it is told to quit and its sessions have
// stopped (true), or until it fails (false): io_uring_enter refused, or a
// panic on its thread that no session's own handling recovered.
func (r *ring) run() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			r.fail(v)
			ok = false
		}
	}()
	yielded := time.Now()
	for {
		r.enter(1)
		// One clock read a batch: the packets of a batch came in
		// together, and are timed (lastRTP, digits, the mask delay)
		// to well under a millisecond.
		r.now = time.Now()
		r.reap()
		if r.now.Sub(yielded) > yieldEvery {
			runtime.Gosched()
			yielded = r.now
		}
		if r.quit != nil && len(r.sessions) == 0 && len(r.forks) == 0 {
			return true
		}
	}
}

// fail retires the ring after a failure on its thread: no new session
// comes to it, every session on it (or on its way to it) ends with
// ErrRingFailed, whoever waits for a stop or the quit goes on, and the
// ring is closed. Its buffers and sockets' state stay allocated for
// good: the kernel may still be finishing a receive into them or a send
// out of them, and that memory must never become someone else's.
func (r *ring) fail(v any) {
	r.retired.Store(true)
	r.mu.Lock()
	r.dead = true
	late := r.cmds
	r.cmds = nil
	r.mu.Unlock()

	var victims []*Session
	var dones []chan struct{}
	for s, rs := range r.sessions {
		victims = append(victims, s)
		dones = append(dones, rs.done)
	}
	for _, rf := range r.forks {
		dones = append(dones, rf.done)
	}
	// The batch being run when it failed, and what came since.
	for _, c := range append(r.running, late...) {
		if c.start != nil {
			victims = append(victims, c.start)
		}
		dones = append(dones, c.done)
	}
	if r.quit != nil {
		dones = append(dones, r.quit.done)
	}
	fields := []zap.Field{zap.Int("ring", r.id), zap.Int("calls", len(r.sessions)), zap.Int("rings_left", r.e.live())}
	if ee, ok := v.(enterError); ok {
		fields = append(fields, zap.Error(ee))
	} else {
		fields = append(fields, panics.Fields(v)...)
	}
	r.e.m.faults[faultRing].Inc()
	r.e.log.Error("media: io_uring ring failed; its calls are ended, new calls go to the other rings (or to goroutines when none is left)", fields...)

	// Closing the ring makes the kernel cancel what is in flight and let
	// go of the sockets, so that their ports can be bound again.
	for _, b := range r.maps {
		unix.Munmap(b)
	}
	r.maps = nil
	unix.Close(r.efd)
	unix.Close(r.fd)

	for _, d := range dones {
		// Only this thread closes these (post closes only what it did
		// not queue), and one may be closed already: a stop that
		// completed, whose command is still in the batch.
		if d == nil {
			continue
		}
		select {
		case <-d:
		default:
			close(d)
		}
	}
	for _, s := range victims {
		s.ringFailed()
	}
}

// reap handles every completion there is.
func (r *ring) reap() {
	head := atomic.LoadUint32(r.cqHead)
	for tail := atomic.LoadUint32(r.cqTail); head != tail; tail = atomic.LoadUint32(r.cqTail) {
		for ; head != tail; head++ {
			c := r.cqes[head&*r.cqMask]
			r.complete(int(c.userData>>8), int(c.userData&0xff), c.res, c.flags)
		}
		// Free the entries before handling more: a full completion
		// queue would stall the kernel.
		atomic.StoreUint32(r.cqHead, head)
		// The buffers handled go back to the kernel.
		r.publishBufs()
	}
}

func (r *ring) complete(i, op int, res int32, flags uint32) {
	switch op {
	case udWake:
		r.commands()
		r.armWake()
		return
	case udCancel:
		return
	}
	u := r.slots[i]
	switch op {
	case udSend:
		u.sendOn = false
		if u.rec != nil {
			u.rec.count(u.stream, res >= 0)
			if u.stopping {
				r.maybeForkStopped(u.rec)
			}
			return
		}
	case udRecv:
		more := flags&cqeFMore != 0
		if !more {
			u.recvOn = false
		}
		if flags&cqeFBuffer != 0 {
			bid := uint16(flags >> cqeBufferShift)
			if !u.stopping && res >= 0 {
				r.received(u, r.bufs[int(bid)*bufLen:][:res])
			}
			r.provide(bid)
		}
		if more || u.stopping {
			break
		}
		// Ended: ENOBUFS when every buffer was taken (re-armed once this
		// batch gave them back), a full completion queue, an error.
		if res == -int32(unix.EBADF) || res == -int32(unix.ENOTSOCK) {
			break // not ours any more: never spin on it
		}
		r.armRecv(i)
	}
	if u.stopping {
		r.maybeStopped(u.s)
	}
}

// commands runs what post queued: sessions to start and stop, and quit.
func (r *ring) commands() {
	r.mu.Lock()
	r.running, r.cmds = r.cmds, r.running[:0]
	r.mu.Unlock()
	for _, c := range r.running {
		switch {
		case c.start != nil:
			r.startSession(c.start)
		case c.stop != nil:
			r.stopSession(c.stop, c.done)
		case c.fork != nil:
			r.startFork(c.fork)
			close(c.done)
		case c.unfork != nil:
			r.stopFork(c.unfork, c.done)
		case c.quit:
			c := c
			r.quit = &c
			for s := range r.sessions {
				r.stopSession(s, nil)
			}
			for rec := range r.forks {
				r.stopFork(rec, nil)
			}
		}
	}
	clear(r.running)
}

func (r *ring) slot() int {
	if n := len(r.free); n > 0 {
		i := r.free[n-1]
		r.free = r.free[:n-1]
		return i
	}
	r.slots = append(r.slots, nil)
	return len(r.slots) - 1
}

func (r *ring) startSession(s *Session) {
	if r.quit != nil {
		return
	}
	rs := &ringSession{}
	socks := [4]sock{s.pairs[Carrier].rtp, s.pairs[Platform].rtp, s.pairs[Carrier].rtcp, s.pairs[Platform].rtcp}
	for k, sk := range socks {
		u := &usock{s: s, fd: sk.fd, leg: Leg(k % 2), rtcp: k >= 2}
		// The template of every receive: room for the source address,
		// no control data, no iovec (the buffer comes from the ring).
		u.rmsg.Name, u.rmsg.Namelen = &u.from[0], nameRoom
		i := r.slot()
		u.self = i
		u.fixed = r.fix(i, u.fd)
		r.slots[i] = u
		rs.slots[k] = i
	}
	// Carrier RTP leaves by the platform RTP socket and so on.
	for k, i := range rs.slots {
		r.slots[i].peer = rs.slots[k^1]
	}
	r.sessions[s] = rs
	for _, i := range rs.slots {
		r.armRecv(i)
	}
}

// startFork gives a fork's two RTP sockets a slot each, for sends; the
// RTCP sockets only hold their ports.
func (r *ring) startFork(rec *Recording) {
	if r.quit != nil {
		return
	}
	rf := &ringFork{}
	for st := range rec.pairs {
		u := &usock{s: rec.s, fd: rec.pairs[st].rtp.fd, rec: rec, stream: forkStream(st)}
		i := r.slot()
		u.self, u.peer = i, -1
		u.fixed = r.fix(i, u.fd)
		r.slots[i] = u
		rf.slots[st] = i
		rec.slots[st] = i
	}
	r.forks[rec] = rf
	rec.onRing = true
}

func (r *ring) stopFork(rec *Recording, done chan struct{}) {
	rf := r.forks[rec]
	if rf == nil {
		if done != nil {
			close(done)
		}
		return
	}
	if done != nil {
		rf.done = done
	}
	for _, i := range rf.slots {
		r.slots[i].stopping = true
	}
	r.maybeForkStopped(rec)
}

// maybeForkStopped frees a stopping fork's slots once no send of it is
// in flight, and lets its Close go on.
func (r *ring) maybeForkStopped(rec *Recording) {
	rf := r.forks[rec]
	if rf == nil {
		return
	}
	for _, i := range rf.slots {
		if r.slots[i].sendOn {
			return
		}
	}
	for st, i := range rf.slots {
		r.unfix(i)
		r.slots[i] = nil
		r.free = append(r.free, i)
		rec.slots[st] = -1
	}
	delete(r.forks, rec)
	if rf.done != nil {
		close(rf.done)
	}
}

func (r *ring) stopSession(s *Session, done chan struct{}) {
	rs := r.sessions[s]
	if rs == nil {
		if done != nil {
			close(done)
		}
		return
	}
	if done != nil {
		rs.done = done
	}
	for _, i := range rs.slots {
		u := r.slots[i]
		if u.stopping {
			continue
		}
		u.stopping = true
		if u.recvOn {
			e := r.sqe()
			e.opcode, e.fd = opAsyncCancel, -1
			e.addr = uint64(i)<<8 | udRecv
			e.userData = udCancel
		}
	}
	r.maybeStopped(s)
}

// maybeStopped frees a stopping session's slots once none of its
// operations is in flight, and lets Close go on.
func (r *ring) maybeStopped(s *Session) {
	rs := r.sessions[s]
	if rs == nil {
		return
	}
	for _, i := range rs.slots {
		if u := r.slots[i]; u.recvOn || u.sendOn {
			return
		}
	}
	for _, i := range rs.slots {
		r.unfix(i)
		r.slots[i] = nil
		r.free = append(r.free, i)
	}
	delete(r.sessions, s)
	if rs.done != nil {
		close(rs.done)
	}
}

// received unpacks a multishot receive's buffer: a struct
// io_uring_recvmsg_out, the source address in nameRoom bytes, the
// datagram. A datagram longer than the buffer is cut to it, still longer
// than MaxPacket, so it is dropped as oversize.
func (r *ring) received(u *usock, b []byte) {
	if len(b) < recvOut+nameRoom {
		return
	}
	nl := int(binary.NativeEndian.Uint32(b[0:4]))
	r.packet(u, b[recvOut+nameRoom:], sockaddrAddr(b[recvOut:recvOut+min(nl, nameRoom)]))
}

// packet relays what u received through the session's relay, with the
// send queued on the ring.
func (r *ring) packet(u *usock, in []byte, from netip.AddrPort) {
	if !from.IsValid() {
		return
	}
	out := r.slots[u.peer]
	buf := out.sbuf[:]
	if out.sendOn {
		// The previous packet from that socket is still being sent
		// (a full socket buffer): this one goes by a plain syscall.
		buf = r.scratch[:]
	}
	var pkt []byte
	var dst netip.AddrPort
	pkt, dst, r.digits = u.s.relay(u.leg, u.rtcp, in, from, r.now, buf[:MaxPacket], r.digits, &r.fk)
	if pkt == nil {
		return
	}
	if &pkt[0] != &buf[0] {
		// Relayed as it came: the receive buffer goes back to the ring
		// at once.
		pkt = buf[:copy(buf, pkt)]
	}
	r.send(out, pkt, dst)
	if r.fk.n > 0 {
		r.forkSend(&r.fk)
	}
}

// forkSend queues the copy in fk from its fork's socket, or sends it at
// once while that socket's previous send is in flight. A panic here is
// the fork's: it closes the fork, not the ring; a failing ring is not
// the fork's and goes on failing.
func (r *ring) forkSend(fk *forkOut) {
	rec := fk.rec
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(enterError); ok {
				panic(v)
			}
			rec.fault("send", fk.stream, v)
		}
	}()
	if rec.faulted.Load() {
		return
	}
	runTestForkFault("send")
	i := rec.slots[fk.stream]
	if i < 0 {
		return
	}
	out := r.slots[i]
	if out.stopping {
		return
	}
	b := fk.buf[:fk.n]
	if out.sendOn {
		to, tl := sockaddrOf(fk.dst)
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(out.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&to[0])), uintptr(tl))
		rec.count(fk.stream, errno == 0)
		return
	}
	r.send(out, out.sbuf[:copy(out.sbuf[:], b)], fk.dst)
}

func (r *ring) send(out *usock, b []byte, dst netip.AddrPort) {
	if &b[0] != &out.sbuf[0] {
		// out.to may be in the send still in flight: not touched.
		to, tl := sockaddrOf(dst)
		unix.Syscall6(unix.SYS_SENDTO, uintptr(out.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&to[0])), uintptr(tl))
		return
	}
	if dst != out.toAddr || out.toLen == 0 {
		out.to, out.toLen = sockaddrOf(dst)
		out.toAddr = dst
	}
	tl := out.toLen
	e := r.sqe()
	fd, ff := out.file()
	e.opcode, e.fd, e.flags = opSend, fd, ff
	e.addr, e.len = uint64(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b))
	e.off = uint64(uintptr(unsafe.Pointer(&out.to[0]))) // addr2: the destination
	e.spliceFd = int32(tl)                              // addr_len in its low half
	e.opFlags = unix.MSG_DONTWAIT
	e.userData = uint64(out.self)<<8 | udSend
	out.sendOn = true
}

// sockaddrAddr decodes a struct sockaddr_in or sockaddr_in6.
func sockaddrAddr(b []byte) netip.AddrPort {
	if len(b) < unix.SizeofSockaddrInet4 {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(b[2:4])
	switch binary.NativeEndian.Uint16(b[0:2]) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		if len(b) >= unix.SizeofSockaddrInet6 {
			return unmap(netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port))
		}
	}
	return netip.AddrPort{}
}

// sockaddrOf encodes dst as a struct sockaddr_in or sockaddr_in6.
func sockaddrOf(dst netip.AddrPort) ([unix.SizeofSockaddrInet6]byte, uint32) {
	var b [unix.SizeofSockaddrInet6]byte
	binary.BigEndian.PutUint16(b[2:4], dst.Port())
	if a := dst.Addr(); a.Is4() {
		binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
		a4 := a.As4()
		copy(b[4:8], a4[:])
		return b, unix.SizeofSockaddrInet4
	}
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	a16 := dst.Addr().As16()
	copy(b[8:24], a16[:])
	return b, unix.SizeofSockaddrInet6
}

// listenRaw binds a UDP socket that Go's poller never sees. It stays
// blocking: io_uring waits for readiness itself (kernels before 6.x answer
// EAGAIN on O_NONBLOCK files instead), and the one plain send passes
// MSG_DONTWAIT.
func listenRaw(ip netip.Addr, port int) (sock, int, error) {
	family := unix.AF_INET6
	if ip.Is4() {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return sock{}, 0, fmt.Errorf("socket: %w", err)
	}
	var sa unix.Sockaddr
	if ip.Is4() {
		sa = &unix.SockaddrInet4{Port: port, Addr: ip.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: port, Addr: ip.As16()}
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return sock{}, 0, fmt.Errorf("bind %v: %w", netip.AddrPortFrom(ip, uint16(port)), err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return sock{}, 0, fmt.Errorf("getsockname: %w", err)
	}
	switch a := got.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	default:
		unix.Close(fd)
		return sock{}, 0, errors.New("getsockname: not an IP socket")
	}
	return sock{fd: fd, raw: true}, port, nil
}

func closeFD(fd int) { unix.Close(fd) }

func setRecvBufFD(fd, n int) { unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n) }

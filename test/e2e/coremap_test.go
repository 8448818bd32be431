package e2e

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// A hit in a core says little by itself: where it lies does. This file
// maps each hit to the gateway's address space (the core's PT_LOAD
// program headers give every segment's virtual address and file offset),
// to the mapping it was in (/proc/PID/maps, read just before the dump),
// to the symbol of the binary's data it belongs to, and to the Go
// runtime's memory: a heap object (its span, size class, and whether the
// runtime counts it allocated or free) or a goroutine stack (which
// goroutine, and whether the hit is in a live frame or below the stack
// pointer, in frames that returned). gdb reads the runtime's structures
// from the core. What surrounds the hit is printed with the card data
// masked, so a human can tell a JSON body from an ISO 8583 frame or a
// stack frame without the test ever printing card data.

// coreDump is a gcore core file of the gateway: its writable segments and
// the process's mappings when it was taken.
type coreDump struct {
	path string
	segs []coreSegment
	maps []procMapping
}

// coreSegment is one writable PT_LOAD segment of a core.
type coreSegment struct {
	vaddr, off uint64 // virtual address; offset in the core file
	data       []byte
}

// procMapping is one line of /proc/PID/maps.
type procMapping struct {
	lo, hi uint64
	perms  string
	name   string // file, [heap], [stack], [vvar]..., or "" for anonymous
}

// coreHit is one occurrence of a pattern in a core.
type coreHit struct {
	addr   uint64 // virtual address of the first byte
	off    uint64 // offset of the first byte in the core file
	stride int    // spacing of the pattern's bytes: 1 when contiguous
	n      int    // bytes in the pattern
}

// span is the bytes the hit covers, first to last.
func (h coreHit) span() uint64 { return uint64((h.n-1)*h.stride + 1) }

// readCore reads the writable segments of a core file: heap, stacks, the
// binary's data. Read-only segments (the binary's text and constants)
// are left out: psp-sim's help text, in the same binary, names the test
// cards.
func readCore(t *testing.T, path string) []coreSegment {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("core %s: %v", path, err)
	}
	defer f.Close()
	var segs []coreSegment
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_W == 0 || p.Filesz == 0 {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatalf("core %s: segment at %#x: %v", path, p.Vaddr, err)
		}
		segs = append(segs, coreSegment{vaddr: p.Vaddr, off: p.Off, data: b})
	}
	if len(segs) == 0 {
		t.Fatalf("core %s has no writable segment", path)
	}
	return segs
}

// readMaps parses /proc/pid/maps.
func readMaps(pid int) ([]procMapping, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	var ms []procMapping
	for line := range strings.SplitSeq(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		l, err1 := strconv.ParseUint(lo, 16, 64)
		h, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("maps line %q", line)
		}
		m := procMapping{lo: l, hi: h, perms: f[1]}
		if len(f) > 5 {
			m.name = strings.Join(f[5:], " ")
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// size is the writable memory in the dump.
func (d *coreDump) size() int {
	n := 0
	for _, s := range d.segs {
		n += len(s.data)
	}
	return n
}

// search finds every pattern in every segment. A strided match whose
// every byte is a byte of an address into the gateway's own memory is
// left out and counted in columns: it is a column of pointers (an array
// of pointers into one 64 KiB block has the same third byte in each
// element, and a heap address's third byte is a digit's ASCII code as
// often as any other value), not key presses.
func (d *coreDump) search(ps []memPattern) (hits [][]coreHit, columns []int) {
	hits, columns = make([][]coreHit, len(ps)), make([]int, len(ps))
	for i, p := range ps {
		for _, s := range d.segs {
			for _, m := range p.find(s.data) {
				h := coreHit{addr: s.vaddr + uint64(m.at), off: s.off + uint64(m.at), stride: m.stride, n: len(p.seq)}
				if p.strided && d.pointerColumn(h) {
					columns[i]++
					continue
				}
				hits[i] = append(hits[i], h)
			}
		}
	}
	return hits, columns
}

// pointerColumn reports whether every byte of h lies in an aligned 8-byte
// word that points into a mapping of the process.
func (d *coreDump) pointerColumn(h coreHit) bool {
	for k := 0; k < h.n; k++ {
		w, _ := d.read((h.addr+uint64(k*h.stride))&^7, 0, 8)
		if len(w) < 8 {
			return false
		}
		if _, ok := d.mapping(binary.LittleEndian.Uint64(w)); !ok {
			return false
		}
	}
	return true
}

// read returns the bytes at [addr, addr+n) that the dump holds, clipped
// to the segment addr lies in, and the address of the first.
func (d *coreDump) read(addr uint64, before, after int) ([]byte, uint64) {
	for _, s := range d.segs {
		if addr < s.vaddr || addr >= s.vaddr+uint64(len(s.data)) {
			continue
		}
		i := int(addr - s.vaddr)
		lo, hi := max(0, i-before), min(len(s.data), i+after)
		return s.data[lo:hi], s.vaddr + uint64(lo)
	}
	return nil, addr
}

func (d *coreDump) mapping(addr uint64) (procMapping, bool) {
	for _, m := range d.maps {
		if addr >= m.lo && addr < m.hi {
			return m, true
		}
	}
	return procMapping{}, false
}

// binarySyms are the gateway binary's symbols with a size, by address:
// its data (a hit in a package variable) and its text (return addresses
// near a hit on a stack name the frames).
type binarySyms struct {
	syms []elf.Symbol
	text [2]uint64 // [start, end) of .text
}

func loadSyms(bin string) (*binarySyms, error) {
	f, err := elf.Open(bin)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC {
		// A position-independent build loads elsewhere than its symbols say.
		return nil, fmt.Errorf("%s is not a fixed-address executable", bin)
	}
	syms, err := f.Symbols()
	if err != nil {
		return nil, err
	}
	b := &binarySyms{}
	for _, s := range syms {
		if s.Size > 0 && s.Value > 0 {
			b.syms = append(b.syms, s)
		}
	}
	slices.SortFunc(b.syms, func(x, y elf.Symbol) int { return cmpU64(x.Value, y.Value) })
	if t := f.Section(".text"); t != nil {
		b.text = [2]uint64{t.Addr, t.Addr + t.Size}
	}
	return b, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// name is "symbol+0xoff" for addr, or "".
func (b *binarySyms) name(addr uint64) string {
	if b == nil {
		return ""
	}
	i, _ := slices.BinarySearchFunc(b.syms, addr, func(s elf.Symbol, a uint64) int { return cmpU64(s.Value, a+1) })
	if i == 0 {
		return ""
	}
	s := b.syms[i-1]
	if addr >= s.Value+s.Size {
		return ""
	}
	return fmt.Sprintf("%s+%#x", s.Name, addr-s.Value)
}

func (b *binarySyms) isText(addr uint64) bool {
	return b != nil && addr >= b.text[0] && addr < b.text[1]
}

// goSpan is what the Go runtime's heap says about an address: the span
// (mheap_.arenas[0][arena].spans[page]) it lies in.
type goSpan struct {
	state            int // 0 dead (free pages), 1 in use (heap objects), 2 manual (stacks, GC work buffers)
	start            uint64
	npages, elemsize uint64
	freeIndex        uint64
	spanclass        int
	// For a span in use: the hit's object index and its allocation bit
	// (set by the last sweep for an object found live).
	index    uint64
	allocBit int
	hasIndex bool
}

// goPageSize is the runtime's page (runtime/internal: _PageShift 13).
const goPageSize = 8192

// goroutine is one entry of runtime.allgs.
type goroutine struct {
	id, status    uint64
	lo, hi, sp    uint64
	startpc, gopc uint64
}

// runtimeView is what gdb read of the runtime's structures in a core.
type runtimeView struct {
	addrs []uint64
	spans map[int]goSpan // by index in addrs
	gs    []goroutine
	err   string // why some or all of it is missing
}

// gdbScript is the gdb commands that print the span of each address and
// every goroutine, one "TV ..." line each. linux/amd64: one arena level
// (arenas[0]), 64 MiB arenas, 8 KiB pages, arenaBaseOffset
// 0xffff800000000000. Each hit gets its own file, so that an error in
// one (an address outside the heap's index) does not stop the others.
func gdbScripts(dir string, addrs []uint64) ([]string, error) {
	var files []string
	write := func(name, body string) error {
		p := filepath.Join(dir, name)
		files = append(files, p)
		return os.WriteFile(p, []byte("set language c\nset pagination off\n"+body), 0o600)
	}
	for i, a := range addrs {
		body := fmt.Sprintf(`set $a = %#x
set $ha = (*'runtime.mheap_'.arenas[0])[($a + 0x800000000000) >> 26]
if $ha != 0
  set $s = $ha->spans[($a / 8192) %% 8192]
  if $s != 0
    printf "TV %d span %%d %%#lx %%lu %%lu %%u %%u\n", $s->state.s.value, $s->startAddr, $s->npages, $s->elemsize, $s->freeindex, $s->spanclass
    if $s->state.s.value == 1 && $s->elemsize > 0 && $a >= $s->startAddr
      set $x = ($a - $s->startAddr) / $s->elemsize
      printf "TV %d object %%lu %%d\n", $x, (((unsigned char *)$s->allocBits)[$x / 8] >> ($x %% 8)) & 1
    end
  end
end
`, a, i, i)
		if err := write(fmt.Sprintf("span%d.gdb", i), body); err != nil {
			return nil, err
		}
	}
	err := write("goroutines.gdb", `set $i = 0
while $i < 'runtime.allgs'.len
  set $g = 'runtime.allgs'.array[$i]
  printf "TV g %lu %u %#lx %#lx %#lx %#lx %#lx\n", $g->goid, $g->atomicstatus.value, $g->stack.lo, $g->stack.hi, $g->sched.sp, $g->startpc, $g->gopc
  set $i = $i + 1
end
`)
	return files, err
}

// spanLookup: gdbScripts knows the heap's layout on this platform.
const spanLookup = runtime.GOOS == "linux" && runtime.GOARCH == "amd64"

// readRuntime asks gdb, with the binary's debug information, what the
// runtime's heap and goroutines were at each address.
func readRuntime(bin, core, dir string, addrs []uint64) runtimeView {
	v := runtimeView{addrs: addrs, spans: map[int]goSpan{}}
	if !spanLookup {
		v.err = "the heap's layout is known here for linux/amd64 only"
		return v
	}
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		v.err = "gdb not found"
		return v
	}
	files, err := gdbScripts(dir, addrs)
	if err != nil {
		v.err = err.Error()
		return v
	}
	args := []string{"-batch", "-nx"}
	for _, f := range files {
		args = append(args, "-x", f)
	}
	out, err := exec.Command(gdb, append(args, bin, core)...).CombinedOutput()
	if err != nil {
		v.err = fmt.Sprintf("gdb: %v", err)
	}
	var errs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if strings.Contains(line, "Error in sourced command file") || strings.HasPrefix(line, "No symbol") {
			errs = append(errs, line)
		}
		if len(f) < 3 || f[0] != "TV" {
			continue
		}
		u := func(i int) uint64 {
			if i >= len(f) {
				return 0
			}
			n, _ := strconv.ParseUint(f[i], 0, 64)
			return n
		}
		if f[1] == "g" {
			v.gs = append(v.gs, goroutine{id: u(2), status: u(3), lo: u(4), hi: u(5), sp: u(6), startpc: u(7), gopc: u(8)})
			continue
		}
		i, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		s := v.spans[i]
		switch f[2] {
		case "span":
			s.state, s.start, s.npages, s.elemsize, s.freeIndex, s.spanclass = int(u(3)), u(4), u(5), u(6), u(7), int(u(8))
		case "object":
			s.index, s.allocBit, s.hasIndex = u(3), int(u(4)), true
		}
		v.spans[i] = s
	}
	if len(errs) > 0 {
		v.err = strings.TrimSpace(v.err + " " + strings.Join(errs, "; "))
	}
	return v
}

// allocated reports whether addr is in a Go heap object the runtime
// counts as allocated.
func (v runtimeView) allocated(addr uint64) bool {
	i := slices.Index(v.addrs, addr)
	s, ok := v.spans[i]
	return i >= 0 && ok && s.state == 1 && s.hasIndex && s.allocatedObject()
}

func (s goSpan) allocatedObject() bool { return s.index < s.freeIndex || s.allocBit == 1 }

// goStatus names runtime g statuses (runtime/runtime2.go).
var goStatus = map[uint64]string{0: "idle", 1: "runnable", 2: "running", 3: "in a syscall", 4: "waiting", 6: "dead (kept for reuse)", 8: "stack being copied", 9: "preempted"}

// whereIs says what memory the hit is in, in words.
func whereIs(h coreHit, i int, d *coreDump, syms *binarySyms, rt runtimeView) []string {
	var out []string
	if m, ok := d.mapping(h.addr); ok {
		name := m.name
		if name == "" {
			name = "anonymous"
		}
		out = append(out, fmt.Sprintf("mapping %x-%x %s %s", m.lo, m.hi, m.perms, name))
	} else {
		out = append(out, "in no mapping of /proc/PID/maps read before the dump")
	}
	if s := syms.name(h.addr); s != "" {
		out = append(out, "binary data: "+s)
	}
	s, ok := rt.spans[i]
	switch {
	case !ok:
		out = append(out, "Go heap: not in any span (outside the Go heap)")
	case h.addr < s.start || h.addr >= s.start+s.npages*goPageSize:
		out = append(out, fmt.Sprintf("Go heap: free pages (the page's span record, at %#x, is stale): memory given back to the heap without being cleared", s.start))
	case s.state == 0:
		out = append(out, fmt.Sprintf("Go heap: free pages (span at %#x, %d pages, not in use): memory given back to the heap without being cleared", s.start, s.npages))
	case s.state == 1:
		w := fmt.Sprintf("Go heap: span at %#x, %d pages, objects of %d bytes (span class %d)", s.start, s.npages, s.elemsize, s.spanclass)
		if s.hasIndex {
			base := s.start + s.index*s.elemsize
			alloc := "allocated"
			if !s.allocatedObject() {
				alloc = "free (unreachable at the last GC, not handed out since): a dropped copy never wiped"
			}
			w += fmt.Sprintf("; object %d at %#x, hit at +%d; %s", s.index, base, h.addr-base, alloc)
		}
		out = append(out, w)
	case s.state == 2:
		w := fmt.Sprintf("Go heap: manual span at %#x (%d pages): goroutine stacks or GC work buffers", s.start, s.npages)
		var g *goroutine
		for k := range rt.gs {
			if h.addr >= rt.gs[k].lo && h.addr < rt.gs[k].hi {
				g = &rt.gs[k]
			}
		}
		if g == nil {
			w += "; no goroutine's stack: a freed stack (the runtime frees a stack it outgrew, or a dead goroutine's, without clearing it)"
		} else {
			st := goStatus[g.status]
			if st == "" {
				st = fmt.Sprint("status ", g.status)
			}
			w += fmt.Sprintf("; goroutine %d (%s, started at %s, created at %s), stack [%#x, %#x), hit %d bytes below its top",
				g.id, st, orHex(syms.name(g.startpc), g.startpc), orHex(syms.name(g.gopc), g.gopc), g.lo, g.hi, g.hi-h.addr)
			switch {
			case g.status == 6:
				w += ": a dead goroutine's stack, kept for the next one"
			case g.status != 2 && h.addr < g.sp:
				w += fmt.Sprintf(", below its stack pointer %#x: a frame that returned", g.sp)
			case g.status != 2:
				w += fmt.Sprintf(", above its stack pointer %#x: a live frame", g.sp)
			}
		}
		out = append(out, w)
	}
	// Return addresses near a hit on a stack, live or freed, name the
	// frames around it.
	if fr := textNear(h, d, syms); fr != "" {
		out = append(out, "code addresses near it: "+fr)
	}
	return out
}

func orHex(name string, a uint64) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("%#x", a)
}

// textNear lists the words within 256 bytes of the hit that point into
// the binary's text, with their offset from the hit.
func textNear(h coreHit, d *coreDump, syms *binarySyms) string {
	b, base := d.read(h.addr&^7, 256, 256+int(h.span()))
	var fr []string
	for i := 0; i+8 <= len(b); i += 8 {
		if w := binary.LittleEndian.Uint64(b[i:]); syms.isText(w) {
			fr = append(fr, fmt.Sprintf("%+d %s", int64(base+uint64(i))-int64(h.addr), syms.name(w)))
		}
	}
	return strings.Join(fr, ", ")
}

// maskedDump is a hex dump of the 64 bytes before and after the hit with
// every byte of card data, of any test card, shown as "**" and '#'.
func maskedDump(h coreHit, d *coreDump, cards []brandCard) string {
	b, base := d.read(h.addr, 64, int(h.span())+64)
	b = slices.Clone(b)
	secretMask := make([]bool, len(b))
	for k := 0; k < h.n; k++ {
		if j := int(h.addr-base) + k*h.stride; j < len(b) {
			secretMask[j] = true
		}
	}
	maskCardData(b, secretMask, cards)
	var w strings.Builder
	for row := 0; row < len(b); row += 16 {
		fmt.Fprintf(&w, "\n      %#014x ", base+uint64(row))
		var text []byte
		for j := row; j < row+16; j++ {
			switch {
			case j >= len(b):
				w.WriteString("   ")
				continue
			case secretMask[j]:
				w.WriteString(" **")
				text = append(text, '#')
				continue
			}
			fmt.Fprintf(&w, " %02x", b[j])
			c := b[j]
			if c < 0x20 || c > 0x7e || c == '#' {
				c = '.'
			}
			text = append(text, c)
		}
		fmt.Fprintf(&w, "  |%s|", text)
	}
	return w.String()
}

// maskCardData marks in mask every run of 3 or more bytes of b that is a
// piece of a card number, expiry or security code of any card, so that
// no other card data near a hit prints either.
func maskCardData(b []byte, mask []bool, cards []brandCard) {
	for _, c := range cards {
		for _, s := range []string{c.pan, c.expiry, c.cvv} {
			for l := min(len(s), len(c.cvv)); l <= len(s); l++ {
				for k := 0; k+l <= len(s); k++ {
					sub := []byte(s[k : k+l])
					for off := 0; ; {
						j := bytes.Index(b[off:], sub)
						if j < 0 {
							break
						}
						for m := off + j; m < off+j+l; m++ {
							mask[m] = true
						}
						off += j + 1
					}
				}
			}
		}
	}
}

// TestCoreHitMasked proves that what the test prints around a hit shows
// the structure around it and no card data: not the hit, not another
// card's data beside it, in ASCII or in hex.
func TestCoreHitMasked(t *testing.T) {
	c := coreCards[0]
	mem := []byte(`{"merchant":"m1","pan":"` + c.pan + `","exp":"` + c.expiry + `","cvv":"` + c.cvv + `","other":"` + coreCards[1].pan + `"}`)
	presses := make([]byte, 24*len(c.pan))
	for i := range c.pan {
		presses[24*i+18] = c.pan[i]
	}
	mem = append(append(mem, make([]byte, 80)...), presses...)
	d := &coreDump{segs: []coreSegment{{vaddr: 0x1000, off: 0x200, data: mem}}}
	ps := corePatterns(coreCards)
	var out strings.Builder
	hits, _ := d.search(ps)
	for i, hs := range hits {
		if ps[i].card != 0 {
			continue
		}
		for _, h := range hs {
			out.WriteString(maskedDump(h, d, coreCards))
		}
	}
	dump := out.String()
	if !strings.Contains(dump, "merchant") || !strings.Contains(dump, `"pan":"########`) {
		t.Fatalf("the dump shows neither the structure nor the masked hit:%s", dump)
	}
	hexOf := func(s string) string {
		var h []string
		for _, b := range []byte(s) {
			h = append(h, fmt.Sprintf("%02x", b))
		}
		return strings.Join(h, " ")
	}
	for _, cc := range coreCards {
		for _, s := range []string{cc.pan, cc.pan[:6], cc.pan[len(cc.pan)-4:], cc.expiry, cc.cvv} {
			if strings.Contains(dump, s) || strings.Contains(dump, hexOf(s)) {
				t.Errorf("the dump shows card data (%d bytes of a card number, expiry or code)", len(s))
			}
		}
	}
}

// TestWhereIs checks how a hit is named from what gdb read, for each kind
// of memory the runtime has. A span record that does not cover the hit's
// page is stale (freed pages keep the last one).
func TestWhereIs(t *testing.T) {
	const a = 0x10000 + 0x40
	d := &coreDump{maps: []procMapping{{lo: 0x10000, hi: 0x20000, perms: "rw-p"}}}
	for _, tt := range []struct {
		name string
		rt   runtimeView
		want string
	}{
		{"outside the heap", runtimeView{}, "outside the Go heap"},
		{"stale span record", runtimeView{spans: map[int]goSpan{0: {state: 1, start: 0x30000, npages: 1, elemsize: 64}}}, "is stale"},
		{"free pages", runtimeView{spans: map[int]goSpan{0: {state: 0, start: 0x10000, npages: 2}}}, "free pages"},
		{"allocated object", runtimeView{spans: map[int]goSpan{0: {state: 1, start: 0x10000, npages: 1, elemsize: 48, freeIndex: 2, index: 1, hasIndex: true}}}, "object 1 at 0x10030, hit at +16; allocated"},
		{"free object", runtimeView{spans: map[int]goSpan{0: {state: 1, start: 0x10000, npages: 1, elemsize: 48, freeIndex: 1, index: 1, hasIndex: true}}}, "free (unreachable"},
		{"object live at the last GC", runtimeView{spans: map[int]goSpan{0: {state: 1, start: 0x10000, npages: 1, elemsize: 48, index: 1, allocBit: 1, hasIndex: true}}}, "; allocated"},
		{"freed stack", runtimeView{spans: map[int]goSpan{0: {state: 2, start: 0x10000, npages: 4}}}, "a freed stack"},
		{"returned frame", runtimeView{spans: map[int]goSpan{0: {state: 2, start: 0x10000, npages: 4}}, gs: []goroutine{{id: 7, status: 4, lo: 0x10000, hi: 0x18000, sp: 0x17000}}}, "goroutine 7 (waiting"},
		{"returned frame", runtimeView{spans: map[int]goSpan{0: {state: 2, start: 0x10000, npages: 4}}, gs: []goroutine{{id: 7, status: 4, lo: 0x10000, hi: 0x18000, sp: 0x17000}}}, "a frame that returned"},
		{"live frame", runtimeView{spans: map[int]goSpan{0: {state: 2, start: 0x10000, npages: 4}}, gs: []goroutine{{id: 7, status: 4, lo: 0x10000, hi: 0x18000, sp: 0x10020}}}, "a live frame"},
		{"dead goroutine", runtimeView{spans: map[int]goSpan{0: {state: 2, start: 0x10000, npages: 4}}, gs: []goroutine{{id: 7, status: 6, lo: 0x10000, hi: 0x18000}}}, "a dead goroutine's stack"},
	} {
		got := strings.Join(whereIs(coreHit{addr: a, stride: 1, n: 16}, 0, d, nil, tt.rt), "; ")
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want it to say %q", tt.name, got, tt.want)
		}
	}
}

// TestCorePointerColumns: an array of pointers whose third bytes spell a
// card number (pointers into one 64 KiB block share it) is not key
// presses; key presses beside it still are.
func TestCorePointerColumns(t *testing.T) {
	const heap = 0x0890_4000_0000
	c := coreCards[0]
	ptrs := make([]byte, 16*len(c.pan))
	for i := range c.pan {
		p := uint64(heap) | uint64(0x02)<<24 | uint64(c.pan[i])<<16 | uint64(0x1730+8*i)
		binary.LittleEndian.PutUint64(ptrs[16*i:], p)
	}
	presses := make([]byte, 24*len(c.pan))
	for i := range c.pan {
		presses[24*i+18] = c.pan[i]
	}
	mem := append(append(slices.Clone(ptrs), make([]byte, 256)...), presses...)
	seg := uint64(heap + 0x1f1_0000)
	d := &coreDump{
		maps: []procMapping{{lo: heap, hi: heap + 0x400_0000, perms: "rw-p"}},
		segs: []coreSegment{{vaddr: seg, data: mem}},
	}
	ps := corePatterns(coreCards)
	i := slices.IndexFunc(ps, func(p memPattern) bool { return p.card == 0 && p.strided && string(p.seq) == c.pan })
	hits, columns := d.search(ps)
	if columns[i] == 0 {
		t.Error("the column of pointers is not recognised as one")
	}
	if len(hits[i]) == 0 {
		t.Error("the key presses are no longer found")
	}
	for _, h := range hits[i] {
		if h.addr < seg+uint64(len(ptrs)) {
			t.Errorf("a column of pointers counted as key presses (stride %d)", h.stride)
		}
	}
}

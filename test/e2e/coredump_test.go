package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moov-io/iso8583"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/psp"
	"github.com/tonevault/tonevault/sip/caller"
	"github.com/tonevault/tonevault/test/vaultserver"
)

// brandCard is a test card with what the gateway derives from its brand.
type brandCard struct {
	card
	brand string
}

// moto is what the connector sends for the card's brand in fields 22, 25,
// 60 and 61 (psp.DefaultMOTO).
func (c brandCard) moto() psp.MOTO {
	if m, ok := psp.DefaultMOTO[c.brand]; ok {
		return m
	}
	return psp.OtherMOTO
}

// before126 is the packed field an 0100 carries just before field 126:
// 61 or 60 when the brand's indicators have them, else 49 (the currency).
func (c brandCard) before126() string {
	lll := func(v string) string { return fmt.Sprintf("%03d%s", len(v), v) }
	switch m := c.moto(); {
	case m.Field61 != "":
		return lll(m.Field61)
	case m.Field60 != "":
		return lll(m.Field60)
	}
	return "826"
}

// coreCards are the three documented test cards, with expiries and
// security codes that appear nowhere else in the tests.
var coreCards = []brandCard{
	{card{pan: "4111111111111111", expiry: "1230", cvv: "737"}, "visa"},
	{card{pan: "5555555555554444", expiry: "0831", cvv: "358"}, "mastercard"},
	{card{pan: "378282246310005", expiry: "0632", cvv: "4826"}, "amex"},
}

// corePayments: each card typed a different way, and the first one again
// (a known card takes another path through tokenization).
var corePayments = []struct {
	card int
	mode caller.Mode
}{{0, caller.InBand}, {1, caller.RFC4733}, {2, caller.Info}, {0, caller.RFC4733}}

// mcc is field 18 as the test gateway sends it (psp's default).
const mcc = "5969"

// memPattern is one form card data takes in memory. A strided pattern's
// bytes are spaced 2 to maxStride bytes apart (an array of structs
// holding one key press each).
type memPattern struct {
	card    int
	name    string
	seq     []byte
	strided bool
}

const maxStride = 64

// corePatterns are the forms in which card data exists, or existed before
// it was removed, in the gateway: what the test searches a core for.
//
// False hits. A short number ("737") turns up by chance in hundreds of
// megabytes of heap, so the expiry and security code are only searched
// where they would sit beside something that fixes them: the JSON quotes
// of a Vault request, the fields that follow them in an ISO 8583 0100
// (14 is followed by 18, 22 and 25, whose values the gateway sets the
// same way for every payment; 126 follows 61, 60 or 49, set the same way
// for every payment of a brand), and the key presses around them. The card number is
// distinctive on its own in every form.
func corePatterns(cards []brandCard) []memPattern {
	var ps []memPattern
	lll := func(v string) string { return fmt.Sprintf("%03d%s", len(v), v) }
	for i, c := range cards {
		yymm := c.expiry[2:] + c.expiry[:2]
		ps = append(ps,
			memPattern{i, "card number", []byte(c.pan), false},
			// Unpadded base64 is a prefix of the padded form.
			memPattern{i, "card number in base64 (Vault transit input)", []byte(base64.RawStdEncoding.EncodeToString([]byte(c.pan))), false},
			memPattern{i, "expiry in base64 (Vault transit input)", []byte(`"` + base64.StdEncoding.EncodeToString([]byte(c.expiry)) + `"`), false},
			memPattern{i, "card number and expiry in base64 (Vault hmac input for the expiry's MAC)", []byte(base64.StdEncoding.EncodeToString([]byte("exp:" + c.pan + ":" + c.expiry))), false},
			memPattern{i, "security code in base64 (the former Vault wrapping input)", []byte(`"` + base64.StdEncoding.EncodeToString([]byte(c.cvv)) + `"`), false},
			memPattern{i, "expiry in an ISO 8583 0100 (fields 14, 18, 22, 25)", []byte(yymm + mcc + c.moto().EntryMode + c.moto().Condition), false},
			memPattern{i, "security code in an ISO 8583 0100 (fields 60/61/49, 126)", []byte(c.before126() + lll(c.cvv)), false},
			memPattern{i, "expiry, '#' and security code as typed", []byte(c.expiry + "#" + c.cvv), false},
			memPattern{i, "card number as spaced key presses", []byte(c.pan), true},
			memPattern{i, "expiry, '#' and security code as spaced key presses", []byte(c.expiry + "#" + c.cvv), true},
		)
	}
	return ps
}

// memMatch is where a pattern starts in a block of memory, and the
// spacing of its bytes (1 when contiguous).
type memMatch struct{ at, stride int }

// find returns every occurrence of p in mem: contiguous, or spaced at any
// stride from 2 to maxStride.
func (p memPattern) find(mem []byte) []memMatch {
	var ms []memMatch
	if !p.strided {
		for off := 0; ; {
			i := bytes.Index(mem[off:], p.seq)
			if i < 0 {
				return ms
			}
			ms = append(ms, memMatch{off + i, 1})
			off += i + 1
		}
	}
	span := len(p.seq) - 1
	for off := 0; ; {
		i := bytes.IndexByte(mem[off:], p.seq[0])
		if i < 0 {
			return ms
		}
		i += off
		for s := 2; s <= maxStride && i+span*s < len(mem); s++ {
			k := 1
			for k < len(p.seq) && mem[i+k*s] == p.seq[k] {
				k++
			}
			if k == len(p.seq) {
				ms = append(ms, memMatch{i, s})
			}
		}
		off = i + 1
	}
}

// dumpGateway writes a core of the running gateway with gdb's gcore and
// reads its writable memory, with the process's mappings read just
// before. gcore stops the process while it copies it and lets it go on
// afterwards. The core file stays until the test ends, or drop.
func dumpGateway(t *testing.T, gcore string, g *gateway, name string) *coreDump {
	t.Helper()
	pid := g.cmd.Process.Pid
	maps, err := readMaps(pid)
	if err != nil {
		t.Fatalf("maps of the gateway: %v", err)
	}
	prefix := filepath.Join(t.TempDir(), name)
	out, err := exec.Command(gcore, "-o", prefix, fmt.Sprint(pid)).CombinedOutput()
	core := fmt.Sprintf("%s.%d", prefix, pid)
	t.Cleanup(func() { os.Remove(core) })
	if err != nil {
		t.Fatalf("gcore: %v\n%s", err, tail(string(out), 2000))
	}
	return &coreDump{path: core, segs: readCore(t, core), maps: maps}
}

// drop removes the core file and lets its memory go.
func (d *coreDump) drop() {
	os.Remove(d.path)
	d.segs = nil
}

// searchCore counts every pattern in mem and returns the counts, in
// pattern order.
func searchCore(mem []byte, ps []memPattern) []int {
	counts := make([]int, len(ps))
	for i, p := range ps {
		counts[i] = len(p.find(mem))
	}
	return counts
}

// hitCounts is the number of hits of each pattern.
func hitCounts(hits [][]coreHit) []int {
	n := make([]int, len(hits))
	for i, h := range hits {
		n[i] = len(h)
	}
	return n
}

// patternHit is a hit of pattern ps[p].
type patternHit struct {
	p int
	coreHit
}

// describeHits says where each hit lies in the gateway's memory and what
// surrounds it, card data masked.
func describeHits(t *testing.T, d *coreDump, ps []memPattern, hits []patternHit) (string, runtimeView) {
	t.Helper()
	syms, err := loadSyms(tvBin)
	var b strings.Builder
	if err != nil {
		fmt.Fprintf(&b, "\n  (no symbols: %v)", err)
	}
	addrs := make([]uint64, len(hits))
	for i, h := range hits {
		addrs[i] = h.addr
	}
	rt := readRuntime(tvBin, d.path, t.TempDir(), addrs)
	if rt.err != "" {
		fmt.Fprintf(&b, "\n  (the runtime's view is incomplete: %s)", rt.err)
	}
	for i, h := range hits {
		p := ps[h.p]
		fmt.Fprintf(&b, "\n  card %d (%s) %s at %#x (core file offset %#x", p.card, coreCards[p.card].brand, p.name, h.addr, h.off)
		if h.stride > 1 {
			fmt.Fprintf(&b, ", one byte every %d", h.stride)
		}
		b.WriteString("):")
		for _, w := range whereIs(h.coreHit, i, d, syms, rt) {
			b.WriteString("\n    " + w)
		}
		b.WriteString("\n    around it (card data as ** and #):" + maskedDump(h.coreHit, d, coreCards))
	}
	return b.String(), rt
}

func requireGcore(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("gcore")
	if err != nil {
		if os.Getenv(vaultserver.EnvRequireTools) == "1" {
			t.Fatalf("gcore (Debian package gdb) not found: %v", err)
		}
		t.Skipf("gcore (Debian package gdb) not found; scripts/install-deps.sh memory installs it (set %s=1 to fail instead)", vaultserver.EnvRequireTools)
	}
	return p
}

// TestCoreDumpHoldsNoCardData takes a payment with each test card on one
// call through the real gateway (real Vault, psp-sim, a SIP customer
// typing in-band, RFC 4733 and SIP INFO; the first card twice, since a
// known card takes another path through tokenization), hangs up, waits
// for the trail to say every field of every card was wiped, every session
// ended and the call ended, and then dumps the running gateway's memory
// with gcore: no form of any card's data may be in it beyond what a dump
// taken before the call held.
//
// That first dump is the baseline: the binary's own text names the test
// cards (psp-sim's --help, built into a string at start-up, so in
// writable memory), and a hit that was there before any key was pressed
// is not card data from a payment. The baseline counts are logged.
//
// The control: a dump taken while the first card is captured and not yet
// submitted must hold its card number once more than the baseline (the
// capture session keeps it until submit): that proves that gcore sees the
// gateway's heap and that the search reads the core; and the locator must
// find it in an allocated heap object (the session's field), which proves
// that it reads the runtime's heap. TestCoreSearch proves that every
// pattern is found when present.
//
// No garbage collection is forced before the dump (the gateway has no
// way to ask for one, and should not): it would not help anyway, since
// the Go runtime does not clear memory it frees, only memory it hands out
// again. A copy made and dropped without wiping is therefore still in the
// dump, which is what the test wants to see. That includes goroutine
// stacks: the runtime copies a stack that runs out to a larger one and
// frees the old one as it is, so a buffer on the stack that was wiped
// after the stack grew left a copy. Whether a given call grows its
// goroutine's stack, and whether the freed stack is used again before the
// dump, depends on what that goroutine ran before: such a leak shows in
// some runs only (the expiry MAC's input in package tokenize did, in 1 run
// in 2 to 4, until it moved to the heap).
//
// A failure says where each copy the payments left is (coremap_test.go):
// its address, the mapping, the heap object or goroutine stack (live, or
// freed) it is in, the functions whose addresses lie near it, and the
// bytes around it with all card data masked.
func TestCoreDumpHoldsNoCardData(t *testing.T) {
	t.Parallel()
	gcore := requireGcore(t)
	s := newStack(t, stackOptions{})
	ps := corePatterns(coreCards)

	base := dumpGateway(t, gcore, s.gw, "baseline")
	baseHits, cols := base.search(ps)
	baseline := hitCounts(baseHits)
	logCounts(t, "baseline dump (before the call)", ps, baseline, cols)

	call := s.dial(t)
	callID := s.api.answeredCall(t)
	var payments, allowed []string
	for i, p := range corePayments {
		c := coreCards[p.card]
		pay := s.api.startPayment(t, callID, fmt.Sprintf("order-core-%d", i))
		payments = append(payments, pay.ID)
		typeCard(t, call, c.keys(), p.mode)
		v := s.api.waitState(t, pay.ID, 60*time.Second, "complete")
		if f := v.field("card_number"); !f.Valid || f.Brand != c.brand {
			t.Fatalf("payment %d: card_number %+v, want a valid %s", i, f, c.brand)
		}
		if i == 0 {
			control := dumpGateway(t, gcore, s.gw, "control")
			ch, cols := control.search(ps)
			counts := hitCounts(ch)
			logCounts(t, "control dump (card 0 captured, not submitted)", ps, counts, cols)
			if counts[0] <= baseline[0] {
				t.Fatal("control: the card number being captured is not in the gateway's core: the dump or the search is broken")
			}
			// The session's field holds it: a live heap object, which
			// proves the locator reads the runtime's heap right.
			var live []patternHit
			for _, h := range ch[0] {
				if !slices.ContainsFunc(baseHits[0], func(b coreHit) bool { return b.addr == h.addr }) {
					live = append(live, patternHit{0, h})
				}
			}
			desc, rt := describeHits(t, control, ps, live)
			t.Logf("control: where the card number being captured is:%s", desc)
			if spanLookup && !slices.ContainsFunc(live, func(h patternHit) bool { return rt.allocated(h.addr) }) {
				t.Error("control: the locator finds no allocated Go heap object holding the card number being captured: it no longer reads the runtime's heap (see gdbScripts)")
			}
			control.drop()
		}
		masked := v.field("card_number").Masked
		v = decodeView(t, s.api.submit(t, v.ID), 200)
		if v.State != "approved" || v.Result == nil {
			t.Fatalf("payment %d: submit: %s %q %+v, want approved", i, v.State, v.Reason, v.Result)
		}
		allowed = append(allowed, masked, v.Result.Token)
	}
	s.hangup(t, call)
	waitFor(t, "every field wiped, every session and the call ended, in the trail", 30*time.Second, func() bool {
		recs := readTrail(t, s.gw.trail)
		for _, id := range payments {
			wiped := map[string]bool{}
			ended := false
			for _, r := range recs {
				if r.PaymentID == id && r.Event == audit.EventCardDataWiped {
					wiped[r.Field] = true
				}
				ended = ended || r.PaymentID == id && r.Event == audit.EventSessionEnded
			}
			if !wiped["card_number"] || !wiped["expiry"] || !wiped["security_code"] || !ended {
				return false
			}
		}
		return slices.ContainsFunc(recs, func(r audit.Record) bool {
			return r.CallID == callID && r.Event == audit.EventSIPCallEnded
		})
	})

	after := dumpGateway(t, gcore, s.gw, "after")
	hits, cols := after.search(ps)
	counts := hitCounts(hits)
	logCounts(t, fmt.Sprintf("dump after every payment ended (%d MB of writable memory)", after.size()>>20), ps, counts, cols)
	// The hits at an address that held the same pattern before the call
	// are the baseline's; the others are what the payments left.
	var fresh, old []patternHit
	for i, n := range counts {
		if n <= baseline[i] {
			continue
		}
		t.Errorf("CARD DATA IN MEMORY: card %d (%s): %s: %d copies (%d before the call)", ps[i].card, coreCards[ps[i].card].brand, ps[i].name, n, baseline[i])
		for _, h := range hits[i] {
			if slices.ContainsFunc(baseHits[i], func(b coreHit) bool { return b.addr == h.addr }) {
				continue
			}
			fresh = append(fresh, patternHit{i, h})
		}
		for _, h := range baseHits[i] {
			old = append(old, patternHit{i, h})
		}
	}
	if len(fresh) > 0 {
		desc, _ := describeHits(t, after, ps, fresh)
		t.Logf("where the copies the payments left are:%s", desc)
	}
	if len(old) > 0 {
		desc, _ := describeHits(t, base, ps, old)
		t.Logf("where the same patterns were before the call (baseline dump):%s", desc)
	}
	s.finish(t)
	for _, c := range coreCards {
		assertNoLeaks(t, s.rec, c.card, allowed...)
	}
}

// logCounts logs the hits of each pattern, and the strided matches left
// out as columns of pointers.
func logCounts(t *testing.T, what string, ps []memPattern, counts, columns []int) {
	t.Helper()
	var b strings.Builder
	for i, p := range ps {
		fmt.Fprintf(&b, "\n  card %d (%s) %-72s %d", p.card, coreCards[p.card].brand, p.name, counts[i])
		if columns[i] > 0 {
			fmt.Fprintf(&b, " (and %d columns of pointers, left out)", columns[i])
		}
	}
	t.Logf("%s:%s", what, b.String())
}

// readTrail reads the audit trail as far as it is written.
func readTrail(t *testing.T, path string) []audit.Record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var r audit.Record
		if json.Unmarshal(line, &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// TestCoreSearch proves that each pattern finds its form of card data,
// made by the encoders the gateway uses, and nothing in random memory.
func TestCoreSearch(t *testing.T) {
	ps := corePatterns(coreCards)
	noise := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(4111, 1111))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	for i, n := range searchCore(noise, ps) {
		if n != 0 {
			t.Errorf("%s of card %d: %d hits in random memory", ps[i].name, ps[i].card, n)
		}
	}
	for ci, c := range coreCards {
		var forms [][]byte
		for _, body := range []map[string]any{
			{"batch_input": []map[string]any{{"input": []byte(c.pan)}, {"input": []byte("exp:" + c.pan + ":" + c.expiry)}}, "key_version": 1},
			{"batch_input": []map[string]any{{"plaintext": []byte(c.pan)}, {"plaintext": []byte(c.expiry)}}},
			{"cvv": []byte(c.cvv)},
		} {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			forms = append(forms, b)
		}
		forms = append(forms, packedRequest(t, c))
		// The key presses as an array of 24-byte structs, one per press.
		keys := c.keys()
		presses := make([]byte, 24*len(keys))
		for i, k := range keys {
			presses[24*i+18] = k
		}
		forms = append(forms, presses, keys)
		mem := slices.Clone(noise)
		for i, f := range forms {
			copy(mem[(i+1)<<20:], f)
		}
		counts := searchCore(mem, ps)
		for i, p := range ps {
			if p.card == ci && counts[i] == 0 {
				t.Errorf("card %d: %s not found where it was planted", ci, p.name)
			}
		}
	}
}

// packedRequest is an 0100 for c as the ISO 8583 connector builds it.
func packedRequest(t *testing.T, c brandCard) []byte {
	t.Helper()
	m := iso8583.NewMessage(psp.Spec)
	m.MTI("0100")
	moto := c.moto()
	for id, v := range map[int]string{3: "000000", 4: "1999", 7: "1206235959", 11: "000042", 12: "235959",
		13: "1206", 18: mcc, 22: moto.EntryMode, 25: moto.Condition, 37: "634023000042", 41: "TERM0001", 42: "MERCHANT0000001",
		49: "826", 60: moto.Field60, 61: moto.Field61} {
		if v == "" {
			continue
		}
		if err := m.Field(id, v); err != nil {
			t.Fatal(err)
		}
	}
	yymm := c.expiry[2:] + c.expiry[:2]
	for id, v := range map[int]string{2: c.pan, 14: yymm, 126: c.cvv} {
		if err := m.BinaryField(id, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := psp.Pack(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

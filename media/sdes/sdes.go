// Package sdes is SDP Security Descriptions for media streams (RFC 4568):
// the a=crypto attribute that carries SRTP master keys in the SDP, for
// the suites ToneVault speaks (AES_CM_128_HMAC_SHA1_80,
// AES_CM_128_HMAC_SHA1_32 and, RFC 7714, AEAD_AES_128_GCM).
//
// Keys are secrets: a Key keeps its bytes unexported, prints as a mask
// whatever the verb, and no error of this package quotes an attribute
// (the attribute holds the key). Only Crypto.Marshal writes a key out,
// for the SDP itself.
package sdes

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Suite is an SRTP crypto suite.
type Suite uint8

// The suites ToneVault negotiates, in the order it prefers them.
const (
	SuiteUnknown Suite = iota
	AESCM128SHA1_80
	AESCM128SHA1_32
	AEADAES128GCM
)

// Suites are every suite ToneVault offers, most preferred first.
var Suites = []Suite{AESCM128SHA1_80, AESCM128SHA1_32, AEADAES128GCM}

var suiteNames = [...]string{
	AESCM128SHA1_80: "AES_CM_128_HMAC_SHA1_80",
	AESCM128SHA1_32: "AES_CM_128_HMAC_SHA1_32",
	AEADAES128GCM:   "AEAD_AES_128_GCM",
}

func (s Suite) String() string {
	if s > SuiteUnknown && int(s) < len(suiteNames) {
		return suiteNames[s]
	}
	return "unknown"
}

// ParseSuite reads a suite name as it appears in a=crypto.
func ParseSuite(name string) Suite {
	for s, n := range suiteNames {
		if s != 0 && n == name {
			return Suite(s)
		}
	}
	return SuiteUnknown
}

// KeyLen and SaltLen are the master key and salt sizes of the suite in
// bytes (RFC 4568 6.2, RFC 7714 12).
func (s Suite) KeyLen() int { return 16 }

// SaltLen is the master salt size: 14 bytes for AES-CM, 12 for GCM.
func (s Suite) SaltLen() int {
	if s == AEADAES128GCM {
		return 12
	}
	return 14
}

// Lifetime bounds: RFC 3711 allows 2^48 SRTP packets per master key.
const maxLifetime = 1 << 48

// MaxMKILen is the longest MKI accepted, in bytes (RFC 4568 allows 128;
// every implementation seen uses 1 to 4).
const MaxMKILen = 4

// Key is one master key and salt with its lifetime and master key
// identifier (MKI).
type Key struct {
	material []byte // key || salt
	// Lifetime is the number of packets the key may protect (0: not
	// given, the suite's maximum).
	Lifetime uint64
	// MKI and MKILen are the master key identifier and its length in
	// bytes in each packet; MKILen 0: no MKI.
	MKI    uint32
	MKILen int
}

// NewKey draws a fresh random key for the suite, with an MKI of mkiLen
// bytes (value 1) when mkiLen > 0.
func NewKey(s Suite, mkiLen int) (Key, error) {
	if s == SuiteUnknown || int(s) >= len(suiteNames) {
		return Key{}, errors.New("sdes: unknown suite")
	}
	if mkiLen < 0 || mkiLen > MaxMKILen {
		return Key{}, fmt.Errorf("sdes: MKI length %d out of range 0-%d", mkiLen, MaxMKILen)
	}
	k := Key{material: make([]byte, s.KeyLen()+s.SaltLen()), MKILen: mkiLen}
	if mkiLen > 0 {
		k.MKI = 1
	}
	if _, err := rand.Read(k.material); err != nil {
		return Key{}, fmt.Errorf("sdes: %w", err)
	}
	return k, nil
}

// Master splits the key into master key and salt for suite s. The slices
// share the key's memory.
func (k Key) Master(s Suite) (key, salt []byte) {
	n := s.KeyLen()
	if len(k.material) != n+s.SaltLen() {
		return nil, nil
	}
	return k.material[:n:n], k.material[n:]
}

// MKIBytes is the MKI as it appears in each packet (big-endian, MKILen
// bytes), nil without MKI.
func (k Key) MKIBytes() []byte {
	if k.MKILen == 0 {
		return nil
	}
	b := make([]byte, k.MKILen)
	v := k.MKI
	for i := k.MKILen - 1; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
	return b
}

// Valid reports whether the key has material.
func (k Key) Valid() bool { return len(k.material) > 0 }

// Equal reports whether two keys are the same key, MKI and lifetime.
func (k Key) Equal(o Key) bool {
	return bytes.Equal(k.material, o.material) && k.MKI == o.MKI && k.MKILen == o.MKILen && k.Lifetime == o.Lifetime
}

// Wipe overwrites the key's bytes; every copy of the Key shares them.
func (k Key) Wipe() { clear(k.material) }

// Format never prints the key: every verb gets a mask.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte("inline:[key withheld]")) }

// Crypto is one a=crypto attribute.
type Crypto struct {
	Tag   int
	Suite Suite
	Keys  []Key
}

// Format never prints the keys.
func (c Crypto) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "%d %s inline:[%d keys withheld]", c.Tag, c.Suite, len(c.Keys))
}

// Errors of Parse. They never quote the attribute: it holds a key.
var (
	ErrSyntax       = errors.New("sdes: a=crypto: malformed")
	ErrSuite        = errors.New("sdes: a=crypto: suite not supported")
	ErrSessionParam = errors.New("sdes: a=crypto: session parameter not supported")
)

// Parse reads the value of an a=crypto attribute (what follows
// "a=crypto:"): "1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^31|1:1". Session
// parameters that weaken the protection (UNENCRYPTED_SRTP,
// UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP), a key derivation rate other
// than 0 and forward error correction are refused (ErrSessionParam), as
// RFC 4568 6.3 has an answerer refuse what it does not do; WSH, a hint,
// is accepted. An attribute with an unknown suite is ErrSuite, so that
// the caller can go on to the next one.
func Parse(v string) (Crypto, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: want tag, suite and key parameters", ErrSyntax)
	}
	var c Crypto
	tag, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || len(f[0]) > 9 {
		return Crypto{}, fmt.Errorf("%w: tag is not 1 to 9 digits", ErrSyntax)
	}
	c.Tag = int(tag)
	if c.Suite = ParseSuite(f[1]); c.Suite == SuiteUnknown {
		return c, ErrSuite
	}
	for _, sp := range f[3:] {
		name, val, _ := strings.Cut(sp, "=")
		switch name {
		case "WSH":
			if _, err := strconv.ParseUint(val, 10, 32); err != nil {
				return Crypto{}, fmt.Errorf("%w: WSH is not a number", ErrSyntax)
			}
		case "KDR":
			if val != "0" {
				return Crypto{}, fmt.Errorf("%w: key derivation rate other than 0", ErrSessionParam)
			}
		default:
			if len(name) > 32 {
				name = name[:32]
			}
			return Crypto{}, fmt.Errorf("%w: %q", ErrSessionParam, printable(name))
		}
	}
	mkiLen := -1
	for kp := range strings.SplitSeq(f[2], ";") {
		k, err := parseKey(kp, c.Suite)
		if err != nil {
			c.wipe()
			return Crypto{}, err
		}
		// RFC 4568 6.1: with several keys each has an MKI, all of one
		// length, so that a packet says which key protects it.
		if mkiLen >= 0 && (k.MKILen != mkiLen || k.MKILen == 0) || len(c.Keys) > 0 && k.MKILen == 0 {
			k.Wipe()
			c.wipe()
			return Crypto{}, fmt.Errorf("%w: several keys without MKIs of one length", ErrSyntax)
		}
		for _, o := range c.Keys {
			if o.MKI == k.MKI {
				k.Wipe()
				c.wipe()
				return Crypto{}, fmt.Errorf("%w: two keys with one MKI", ErrSyntax)
			}
		}
		mkiLen = k.MKILen
		c.Keys = append(c.Keys, k)
		if len(c.Keys) > 16 {
			c.wipe()
			return Crypto{}, fmt.Errorf("%w: more than 16 keys", ErrSyntax)
		}
	}
	return c, nil
}

func (c Crypto) wipe() {
	for _, k := range c.Keys {
		k.Wipe()
	}
}

// Wipe overwrites every key of the attribute.
func (c Crypto) Wipe() { c.wipe() }

// printable keeps an error's quoted token to ASCII letters, digits and
// underscores.
func printable(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			b[i] = '?'
		}
	}
	return string(b)
}

// parseKey reads "inline:KEY[|LIFETIME][|MKI:LEN]".
func parseKey(kp string, s Suite) (Key, error) {
	method, info, ok := strings.Cut(kp, ":")
	if !ok || method != "inline" {
		return Key{}, fmt.Errorf("%w: key method is not inline", ErrSyntax)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return Key{}, fmt.Errorf("%w: too many key fields", ErrSyntax)
	}
	want := s.KeyLen() + s.SaltLen()
	raw, err := decodeKey(parts[0], want)
	if err != nil {
		return Key{}, err
	}
	k := Key{material: raw}
	rest := parts[1:]
	if len(rest) > 0 && !strings.Contains(rest[0], ":") {
		if k.Lifetime, err = parseLifetime(rest[0]); err != nil {
			k.Wipe()
			return Key{}, err
		}
		rest = rest[1:]
	}
	if len(rest) > 0 {
		val, n, ok := strings.Cut(rest[0], ":")
		mki, err1 := strconv.ParseUint(val, 10, 32)
		l, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || l < 1 || l > MaxMKILen || l < 4 && mki >= 1<<(8*l) {
			k.Wipe()
			return Key{}, fmt.Errorf("%w: MKI is not value:length with a length of 1 to %d bytes", ErrSyntax, MaxMKILen)
		}
		k.MKI, k.MKILen = uint32(mki), l
		rest = rest[1:]
	}
	if len(rest) > 0 {
		k.Wipe()
		return Key{}, fmt.Errorf("%w: key fields out of order", ErrSyntax)
	}
	return k, nil
}

// decodeKey reads the base64 key||salt, with or without padding (RFC
// 4568 pads; some senders of the 28-byte GCM key do not).
func decodeKey(s string, want int) ([]byte, error) {
	if len(s) > 64 {
		return nil, fmt.Errorf("%w: key too long", ErrSyntax)
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		raw, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key is not base64", ErrSyntax)
	}
	if len(raw) != want {
		clear(raw)
		return nil, fmt.Errorf("%w: key and salt are %d bytes, the suite wants %d", ErrSyntax, len(raw), want)
	}
	return raw, nil
}

// parseLifetime reads "2^31" or a decimal number of packets.
func parseLifetime(s string) (uint64, error) {
	var v uint64
	if e, ok := strings.CutPrefix(s, "2^"); ok {
		n, err := strconv.ParseUint(e, 10, 8)
		if err != nil || n > 48 {
			return 0, fmt.Errorf("%w: lifetime is not 2^0 to 2^48", ErrSyntax)
		}
		v = 1 << n
	} else {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n > maxLifetime {
			return 0, fmt.Errorf("%w: lifetime is not a number of packets up to 2^48", ErrSyntax)
		}
		v = n
	}
	if v == 0 {
		return 0, fmt.Errorf("%w: lifetime 0", ErrSyntax)
	}
	return v, nil
}

// Marshal writes the attribute's value, keys included: it is for the SDP
// and nothing else.
func (c Crypto) Marshal() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(c.Tag))
	b.WriteByte(' ')
	b.WriteString(c.Suite.String())
	b.WriteByte(' ')
	for i, k := range c.Keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString("inline:")
		b.WriteString(base64.StdEncoding.EncodeToString(k.material))
		if k.Lifetime != 0 {
			b.WriteByte('|')
			if k.Lifetime&(k.Lifetime-1) == 0 {
				b.WriteString("2^")
				b.WriteString(strconv.Itoa(log2(k.Lifetime)))
			} else {
				b.WriteString(strconv.FormatUint(k.Lifetime, 10))
			}
		}
		if k.MKILen > 0 {
			b.WriteByte('|')
			b.WriteString(strconv.FormatUint(uint64(k.MKI), 10))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(k.MKILen))
		}
	}
	return b.String()
}

func log2(v uint64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

// Offer makes one attribute per suite, tags 1, 2, ..., each with a fresh
// key (no MKI), for an SDP offer.
func Offer(suites []Suite) ([]Crypto, error) {
	out := make([]Crypto, 0, len(suites))
	for i, s := range suites {
		k, err := NewKey(s, 0)
		if err != nil {
			for _, c := range out {
				c.Wipe()
			}
			return nil, err
		}
		out = append(out, Crypto{Tag: i + 1, Suite: s, Keys: []Key{k}})
	}
	return out, nil
}

// Select picks the first offered attribute whose suite is supported and
// returns it with the answer to send: the same tag and suite and a fresh
// key of ours. The answer's key has an MKI of the length the offer's key
// has, if it has one (symmetric MKI: Microsoft Teams expects it). ok is
// false when none fits.
func Select(offered []Crypto) (theirs, ours Crypto, ok bool, err error) {
	for _, c := range offered {
		if c.Suite == SuiteUnknown || len(c.Keys) == 0 {
			continue
		}
		k, err := NewKey(c.Suite, c.Keys[0].MKILen)
		if err != nil {
			return Crypto{}, Crypto{}, false, err
		}
		return c, Crypto{Tag: c.Tag, Suite: c.Suite, Keys: []Key{k}}, true, nil
	}
	return Crypto{}, Crypto{}, false, nil
}

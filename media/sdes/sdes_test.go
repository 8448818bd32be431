package sdes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// key30 and key28 are fixed test keys (AES-CM and GCM key||salt).
var (
	key30 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqr\x01\x02"))
	key28 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqr"))
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		suite    Suite
		keys     int
		lifetime uint64
		mki      uint32
		mkiLen   int
		err      error
	}{
		{name: "plain", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, suite: AESCM128SHA1_80, keys: 1},
		{name: "Teams: lifetime and MKI", in: "2 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:1", suite: AESCM128SHA1_80, keys: 1, lifetime: 1 << 31, mki: 1, mkiLen: 1},
		{name: "MKI without lifetime", in: "3 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|7:2", suite: AESCM128SHA1_32, keys: 1, mki: 7, mkiLen: 2},
		{name: "decimal lifetime", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1048576", suite: AESCM128SHA1_80, keys: 1, lifetime: 1 << 20},
		{name: "GCM padded", in: "1 AEAD_AES_128_GCM inline:" + key28, suite: AEADAES128GCM, keys: 1},
		{name: "GCM unpadded", in: "1 AEAD_AES_128_GCM inline:" + strings.TrimRight(key28, "="), suite: AEADAES128GCM, keys: 1},
		{name: "two keys with MKIs", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4;inline:" + key30 + "|2^20|2:4", suite: AESCM128SHA1_80, keys: 2, lifetime: 1 << 20, mki: 1, mkiLen: 4},
		{name: "window size hint", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " WSH=64", suite: AESCM128SHA1_80, keys: 1},
		{name: "KDR 0", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " KDR=0", suite: AESCM128SHA1_80, keys: 1},

		{name: "unknown suite", in: "1 AES_256_CM_HMAC_SHA1_80 inline:" + key30, err: ErrSuite},
		{name: "F8 suite", in: "1 F8_128_HMAC_SHA1_80 inline:" + key30, err: ErrSuite},
		{name: "unencrypted SRTP", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", err: ErrSessionParam},
		{name: "unauthenticated SRTP", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNAUTHENTICATED_SRTP", err: ErrSessionParam},
		{name: "KDR", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " KDR=24", err: ErrSessionParam},
		{name: "no key", in: "1 AES_CM_128_HMAC_SHA1_80", err: ErrSyntax},
		{name: "bad tag", in: "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, err: ErrSyntax},
		{name: "tag of 10 digits", in: "1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + key30, err: ErrSyntax},
		{name: "not inline", in: "1 AES_CM_128_HMAC_SHA1_80 uri:" + key30, err: ErrSyntax},
		{name: "short key", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key28, err: ErrSyntax},
		{name: "GCM key for AES-CM", in: "1 AEAD_AES_128_GCM inline:" + key30, err: ErrSyntax},
		{name: "not base64", in: "1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", err: ErrSyntax},
		{name: "lifetime 2^49", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^49", err: ErrSyntax},
		{name: "lifetime 0", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|0", err: ErrSyntax},
		{name: "MKI too long", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:5", err: ErrSyntax},
		{name: "MKI value over its length", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|256:1", err: ErrSyntax},
		{name: "MKI before lifetime", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1|2^31", err: ErrSyntax},
		{name: "two keys without MKI", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30, err: ErrSyntax},
		{name: "two keys, MKI lengths differ", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1;inline:" + key30 + "|2:2", err: ErrSyntax},
		{name: "two keys, one MKI", in: "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|1:1;inline:" + key30 + "|1:1", err: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.in)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Parse = %v, want %v", err, tt.err)
				}
				if strings.Contains(err.Error(), key30[:12]) || strings.Contains(err.Error(), key28[:12]) {
					t.Fatalf("error quotes the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Suite != tt.suite || len(c.Keys) != tt.keys {
				t.Fatalf("suite %v keys %d, want %v %d", c.Suite, len(c.Keys), tt.suite, tt.keys)
			}
			k := c.Keys[0]
			if k.Lifetime != tt.lifetime || k.MKI != tt.mki || k.MKILen != tt.mkiLen {
				t.Errorf("lifetime %d MKI %d:%d, want %d %d:%d", k.Lifetime, k.MKI, k.MKILen, tt.lifetime, tt.mki, tt.mkiLen)
			}
			key, salt := k.Master(c.Suite)
			if len(key) != 16 || len(salt) != c.Suite.SaltLen() {
				t.Errorf("master key %d bytes, salt %d", len(key), len(salt))
			}
		})
	}
}

// TestMarshalRoundTrip: what Marshal writes, Parse reads back as the
// same keys.
func TestMarshalRoundTrip(t *testing.T) {
	for _, in := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30,
		"2 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:1",
		"7 AEAD_AES_128_GCM inline:" + key28 + "|1000",
		"1 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4;inline:" + key30 + "|2^20|2:4",
	} {
		c, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Marshal(); got != in {
			t.Errorf("Marshal = %q, want %q", got, in)
		}
	}
}

// TestKeyNeverPrinted: every formatting verb masks the key, and Wipe
// clears it.
func TestKeyNeverPrinted(t *testing.T) {
	c, err := Parse("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30)
	if err != nil {
		t.Fatal(err)
	}
	// The control: Marshal does write the key, so the check below can
	// find one.
	if !strings.Contains(c.Marshal(), key30) {
		t.Fatal("Marshal does not write the key: the check below proves nothing")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{c, c.Keys[0], []Crypto{c}, struct{ K Key }{c.Keys[0]}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, key30[:8]) || strings.Contains(out, "0123456789") || strings.Contains(out, "30 31 32") || strings.Contains(out, "303132") {
				t.Errorf("%s of %T prints the key: %s", verb, v, out)
			}
		}
	}
	k := c.Keys[0]
	k.Wipe()
	key, salt := k.Master(c.Suite)
	for _, b := range append(key, salt...) {
		if b != 0 {
			t.Fatal("Wipe left key bytes")
		}
	}
}

func TestOfferSelect(t *testing.T) {
	offer, err := Offer(Suites)
	if err != nil {
		t.Fatal(err)
	}
	if len(offer) != 3 || offer[0].Tag != 1 || offer[2].Suite != AEADAES128GCM {
		t.Fatalf("offer = %v", offer)
	}
	if offer[0].Keys[0].Equal(offer[1].Keys[0]) {
		t.Fatal("two offered lines share a key")
	}
	for _, c := range offer {
		if c.Keys[0].MKILen != 0 {
			t.Errorf("offer line %d has an MKI", c.Tag)
		}
	}
	teams, err := Parse("5 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:1")
	if err != nil {
		t.Fatal(err)
	}
	theirs, ours, ok, err := Select([]Crypto{{Tag: 9, Suite: SuiteUnknown}, teams})
	if err != nil || !ok {
		t.Fatalf("Select: ok %v, %v", ok, err)
	}
	if theirs.Tag != 5 || ours.Tag != 5 || ours.Suite != AESCM128SHA1_80 {
		t.Errorf("chose tag %d/%d suite %v", theirs.Tag, ours.Tag, ours.Suite)
	}
	if ours.Keys[0].Equal(theirs.Keys[0]) {
		t.Error("the answer reuses the offer's key")
	}
	if ours.Keys[0].MKILen != 1 {
		t.Errorf("answer MKI length %d, want 1 (symmetric MKI)", ours.Keys[0].MKILen)
	}
	if _, _, ok, _ := Select([]Crypto{{Tag: 1}}); ok {
		t.Error("Select took an attribute with no suite")
	}
}

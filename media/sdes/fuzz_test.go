package sdes

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, what it accepts survives Marshal and
// Parse again unchanged, and its errors never carry the attribute's key
// field.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30,
		"2 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^31|1:1",
		"1 AEAD_AES_128_GCM inline:" + key28 + " WSH=64",
		"1 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^20|1:4;inline:" + key30 + "|2^20|2:4",
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTCP",
		"1 x inline:|||", "", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^48|4294967295:4",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			// The key field, when no session parameter repeats it (those
			// are named in errors, quoted: `"0000000 0000000` names the
			// parameter "0000000", which holds the key field "0000000).
			if f := strings.Fields(s); len(f) >= 3 && len(f[2]) >= 8 && strings.Count(s, f[2]) == 1 &&
				!strings.Contains(quoted(f[3:]), f[2]) && strings.Contains(err.Error(), f[2]) {
				t.Fatalf("error quotes the key parameters: %v", err)
			}
			return
		}
		again, err := Parse(c.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal) = %v", err)
		}
		if again.Tag != c.Tag || again.Suite != c.Suite || len(again.Keys) != len(c.Keys) {
			t.Fatalf("round trip changed %v into %v", c, again)
		}
		for i := range c.Keys {
			if !again.Keys[i].Equal(c.Keys[i]) {
				t.Fatalf("key %d changed in the round trip", i)
			}
		}
		if out := fmt.Sprintf("%v %+v", c, c.Keys); strings.Contains(out, "inline:"+strings.Split(strings.TrimPrefix(strings.Fields(s)[2], "inline:"), "|")[0]) {
			t.Fatalf("formatting prints a key: %s", out)
		}
	})
}

// quoted is every field as an error names it (%q), one after another.
func quoted(fields []string) string {
	var b strings.Builder
	for _, f := range fields {
		b.WriteString(strconv.Quote(f))
	}
	return b.String()
}

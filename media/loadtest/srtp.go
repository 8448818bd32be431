package loadtest

import (
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/tonevault/tonevault/media"
	"github.com/tonevault/tonevault/media/sdes"
)

// The keys of a load run with --srtp (AES_CM_128_HMAC_SHA1_80, the suite
// carriers use most). They protect nothing but generated noise and a
// tone, and the relay child needs them too, so they are fixed here.
var loadKeys = [4]string{
	"bG9hZC1jdXN0b21lci1rZXktMDEyMzQ1Njc4OWFi", // the customers'
	"bG9hZC1yZWxheS1jYXJyaWVyLWtleS0wMTIzNDU2", // the relay's toward them
	"bG9hZC1hZ2VudC1rZXktMDEyMzQ1Njc4OWFiY2Rl", // the agents'
	"bG9hZC1yZWxheS1wbGF0Zm9ybS1rZXktMDEyMzQ1", // the relay's toward them
}

const loadSuite = "AES_CM_128_HMAC_SHA1_80"

// srtpTag is what AES_CM_128_HMAC_SHA1_80 adds to each packet.
const srtpTag = 10

func loadKey(i int) sdes.Key {
	c, err := sdes.Parse("1 " + loadSuite + " inline:" + loadKeys[i])
	if err != nil {
		panic("loadtest: bad fixed key: " + err.Error())
	}
	return c.Keys[0]
}

// relaySRTP is the relay's view of a load call's legs with --srtp.
func relaySRTP() (carrier, platform *media.SRTP) {
	return &media.SRTP{Suite: sdes.AESCM128SHA1_80, Recv: []sdes.Key{loadKey(0)}, Send: loadKey(1)},
		&media.SRTP{Suite: sdes.AESCM128SHA1_80, Recv: []sdes.Key{loadKey(2)}, Send: loadKey(3)}
}

// genCrypto is one of the generator's SRTP contexts: k is the key's index
// in loadKeys. A context is used by one goroutine only.
type genCrypto struct {
	c *srtp.Context
	h rtp.Header
}

func newGenCrypto(k int) *genCrypto {
	key, salt := loadKey(k).Master(sdes.AESCM128SHA1_80)
	c, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		panic("loadtest: " + err.Error())
	}
	return &genCrypto{c: c}
}

// protect encrypts b in place (its capacity has room for the tag).
func (g *genCrypto) protect(b []byte) []byte {
	out, err := g.c.EncryptRTP(b[:0], b, &g.h)
	if err != nil {
		return nil
	}
	return out
}

// unprotect authenticates and decrypts b in place.
func (g *genCrypto) unprotect(b []byte) ([]byte, bool) {
	out, err := g.c.DecryptRTP(b[:0], b, &g.h)
	return out, err == nil
}

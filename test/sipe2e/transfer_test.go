package sipe2e

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/sip"
	"github.com/tonevault/tonevault/test/refdetect"
)

// transferDigits is what the customer types after a transfer: every key.
const transferDigits = "1234567890*#"

// tonePCM is voice, then digits keyed in-band (100 ms of tone at -10
// dBm0 per frequency, 100 ms of pause each), then voice.
func tonePCM(digits string) []int16 {
	const (
		lead = 300 * dtmf.SampleRate / 1000
		tone = 100 * dtmf.SampleRate / 1000
		gap  = 100 * dtmf.SampleRate / 1000
		tail = 500 * dtmf.SampleRate / 1000
	)
	pcm := make([]int16, lead+len(digits)*(tone+gap)+tail)
	addVoice(pcm[:lead], 0)
	at := lead
	for _, d := range []byte(digits) {
		dtmf.AddTone(pcm[at:at+tone], dtmf.SampleRate, int64(at), dtmf.Digit(d), -10, -10)
		at += tone + gap
	}
	addVoice(pcm[at:], at)
	return pcm
}

// writePCMUPcap writes pcm as a pcap of RTP/PCMU packets of 20 ms (UDP
// over IPv4 over Ethernet), for SIPp's play_pcap_audio, and returns its
// path and how long it plays.
func writePCMUPcap(t *testing.T, pcm []int16) (string, time.Duration) {
	t.Helper()
	var b bytes.Buffer
	le, be := binary.LittleEndian, binary.BigEndian
	// Global header: magic, version 2.4, zone, accuracy, snap length,
	// link type 1 (Ethernet).
	for _, v := range []any{uint32(0xa1b2c3d4), uint16(2), uint16(4), int32(0), uint32(0), uint32(65535), uint32(1)} {
		binary.Write(&b, le, v)
	}
	const frame = 160
	n := 0
	for off := 0; off+frame <= len(pcm); off += frame {
		payload := make([]byte, 12+frame)
		payload[0], payload[1] = 0x80, 0
		be.PutUint16(payload[2:], uint16(n))
		be.PutUint32(payload[4:], uint32(off))
		be.PutUint32(payload[8:], 0x5151a0a0)
		for i, v := range pcm[off : off+frame] {
			payload[12+i] = g711.EncodeUlawFrame(v)
		}
		udp := make([]byte, 8, 8+len(payload))
		be.PutUint16(udp[0:], 16000)
		be.PutUint16(udp[2:], 16002)
		be.PutUint16(udp[4:], uint16(8+len(payload)))
		udp = append(udp, payload...)
		ip := make([]byte, 20, 20+len(udp))
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		be.PutUint16(ip[2:], uint16(20+len(udp)))
		copy(ip[12:], []byte{10, 0, 0, 1})
		copy(ip[16:], []byte{10, 0, 0, 2})
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(be.Uint16(ip[i:]))
		}
		for sum>>16 != 0 {
			sum = sum&0xffff + sum>>16
		}
		be.PutUint16(ip[10:], ^uint16(sum))
		ip = append(ip, udp...)
		eth := append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}, ip...)
		usec := n * 20000
		binary.Write(&b, le, uint32(usec/1e6))
		binary.Write(&b, le, uint32(usec%1e6))
		binary.Write(&b, le, uint32(len(eth)))
		binary.Write(&b, le, uint32(len(eth)))
		b.Write(eth)
		n++
	}
	p := filepath.Join(t.TempDir(), "typed.pcap")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, time.Duration(n) * 20 * time.Millisecond
}

// rtpPackets parses what an agent's RTP socket received.
func rtpPackets(t *testing.T, raw [][]byte) []rtp.Packet {
	t.Helper()
	var out []rtp.Packet
	for _, b := range raw {
		var p rtp.Packet
		if err := p.Unmarshal(b); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestTransferMasked: the agent REFERs the call to a second agent, blind
// or attended (Replaces), both SIPp; the gateway places the new leg
// itself. The customer then types every key in-band: the gateway takes
// each digit (after the transfer), the new agent hears the customer (a
// second and more of audio) with no digit any detector can find, and the
// first agent hears nothing more.
func TestTransferMasked(t *testing.T) {
	tests := []struct {
		name     string
		referTo  string // after sip:agent2@127.0.0.1:PORT
		replaces string // the ereg of the new agent's scenario
	}{
		{name: "blind", referTo: ">",
			replaces: `<ereg regexp="Replaces:" search_in="msg" check_it_inverse="true" assign_to="rep"/>`},
		{name: "attended", referTo: "?Replaces=consult-7%40pbx.example%3Bto-tag%3Dab12%3Bfrom-tag%3Dcd34>",
			replaces: `<ereg regexp="Replaces: consult-7@pbx.example;to-tag=ab12;from-tag=cd34" search_in="msg" check_it="true" assign_to="rep"/>`},
	}
	pcm := tonePCM(transferDigits)
	// The input carries the digits, or zero digits at the agent would
	// prove nothing.
	if got := refdetect.Digits(refdetect.Aggressive(pcm)); got != transferDigits {
		t.Fatalf("aggressive detector finds %q in the customer's input, want %q", got, transferDigits)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireSIPp(t)
			pcap, plays := writePCMUPcap(t, pcm)
			agent1Port, agent2Port := freePorts(t, 1), freePorts(t, 1)
			gw := startGateway(t, agent1Port)
			var (
				mu        sync.Mutex
				transfers []sip.Transfer
			)
			t.Cleanup(gw.reg.OnTransfer(func(tr sip.Transfer) {
				mu.Lock()
				transfers = append(transfers, tr)
				mu.Unlock()
			}))
			rtp1, rtp2 := listenAgentRTP(t), listenAgentRTP(t)
			subst := map[string]string{
				"REFER_TO":       "<sip:agent2@127.0.0.1:" + strconv.Itoa(agent2Port) + tt.referTo,
				"REPLACES_CHECK": tt.replaces,
				"PCAP":           pcap,
				"PAUSE_MS":       "1500",
				"PLAY_MS":        strconv.Itoa(int((plays + 500*time.Millisecond) / time.Millisecond)),
			}
			agent2 := startSIPp(t, "new agent", substituted(t, "uas_transferee.xml", subst), "-p", strconv.Itoa(agent2Port), "-t", "u1",
				"-mp", strconv.Itoa(freePorts(t, 4)), "-key", "rtp_port", strconv.Itoa(rtp2.port()))
			agent1 := startSIPp(t, "first agent", substituted(t, "uas_transferor.xml", subst), "-p", strconv.Itoa(agent1Port), "-t", "u1",
				"-mp", strconv.Itoa(freePorts(t, 4)), "-key", "rtp_port", strconv.Itoa(rtp1.port()))
			time.Sleep(200 * time.Millisecond)
			cust := startSIPp(t, "customer", substituted(t, "uac_transfer.xml", subst), "-p", strconv.Itoa(freePorts(t, 1)), "-t", "u1",
				"-mp", strconv.Itoa(freePorts(t, 4)), "-s", "4420700000", "-key", "corr", "ix-"+tt.name, gw.g.Addr("carrier").String())
			cust.wait(t)
			agent1.wait(t)
			agent2.wait(t)

			c := waitEnded(t, gw, 1)[0]
			if c.Outcome != "completed" || c.Transfers != 1 {
				t.Errorf("call outcome %q with %d transfers, want completed after 1", c.Outcome, c.Transfers)
			}
			mu.Lock()
			trs := append([]sip.Transfer(nil), transfers...)
			mu.Unlock()
			if len(trs) != 1 || trs[0].Attended != (tt.name == "attended") || trs[0].CallID != c.ID {
				t.Fatalf("transfer events %+v", trs)
			}
			if recs := gw.audit.records(audit.EventSIPCallTransferred); len(recs) != 1 || recs[0].Outcome != audit.Success || recs[0].Reason != audit.ReasonTransferred {
				t.Errorf("sip.call_transferred records %+v", recs)
			}
			if got := gw.digitString(); got != transferDigits {
				t.Errorf("digits the gateway took = %q, want %q (each once)", got, transferDigits)
			}
			for _, d := range gw.digitsCopy() {
				if !d.At.After(trs[0].At) {
					t.Errorf("digit %c at %v, before the transfer at %v", d.Digit, d.At, trs[0].At)
				}
			}
			if n := len(rtp1.packets()); n != 0 {
				t.Errorf("the first agent got %d RTP packets after it transferred the call", n)
			}
			checkAgentCleanRepeats(t, rtpPackets(t, rtp2.packets()), len(transferDigits))
			t.Logf("transfer completed %v after the call started", trs[0].At.Sub(c.Start).Round(time.Millisecond))
		})
	}
}

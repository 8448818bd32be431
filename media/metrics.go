package media

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/tonevault/tonevault/dtmf"
)

// outcome is what the relay did with one packet and why: it names the
// (action, reason) labels of tonevault_rtp_packets_total.
type outcome uint8

const (
	outcomeNone outcome = iota

	relayAudio         // carrier audio, inspected (masked when masking is on)
	relayEvent         // telephone-event passed through (CaptureOnly, not capturing)
	relayCN            // comfort noise: a level, no audio to hide
	relayUninspect     // unknown payload type passed through (CaptureOnly, not capturing)
	relayPassthru      // platform→carrier RTP, unchanged
	relayRTCP          // RTCP, unchanged
	replaceEvent       // telephone-event replaced by mask audio
	replaceUnknown     // unknown payload type replaced by mask audio
	dropOversize       // datagram over MaxPacket
	dropShort          // shorter than an RTP header
	dropVersion        // RTP version not 2
	dropCSRC           // CSRC count beyond the datagram
	dropExtension      // header extension beyond the datagram
	dropPadding        // padding count 0 or beyond the payload
	dropForeign        // source is not the signalled or latched peer
	dropNoRemote       // the other leg has no address yet
	dropHold           // the other leg is on hold (sendonly, inactive, 0.0.0.0, port 0)
	dropRTCPShort      // RTCP shorter than its 8-byte header
	dropEventWithAudio // telephone-event whose slot the sender's own audio fills
	dropSRTPAuth       // SRTP/SRTCP authentication failed (wrong key, forged, plain RTP on an SRTP leg)
	dropSRTPRejected   // SRTP/SRTCP refused before authentication: replayed, too short
	dropSRTPProtect    // could not be protected toward an SRTP leg (key exhausted)
	dropFault          // the session's handling panicked: nothing of it leaves any more
	numOutcomes
)

var outcomeLabels = [numOutcomes][2]string{
	relayAudio:         {"relayed", "audio"},
	relayEvent:         {"relayed", "telephone_event"},
	relayCN:            {"relayed", "comfort_noise"},
	relayUninspect:     {"relayed", "unknown_payload_type"},
	relayPassthru:      {"relayed", "passthrough"},
	relayRTCP:          {"relayed", "rtcp"},
	replaceEvent:       {"replaced", "telephone_event"},
	replaceUnknown:     {"replaced", "unknown_payload_type"},
	dropOversize:       {"dropped", "oversize"},
	dropShort:          {"dropped", "short_header"},
	dropVersion:        {"dropped", "bad_version"},
	dropCSRC:           {"dropped", "bad_csrc_count"},
	dropExtension:      {"dropped", "bad_extension"},
	dropPadding:        {"dropped", "bad_padding"},
	dropForeign:        {"dropped", "foreign_source"},
	dropNoRemote:       {"dropped", "no_remote"},
	dropHold:           {"dropped", "hold"},
	dropRTCPShort:      {"dropped", "short_rtcp"},
	dropEventWithAudio: {"dropped", "telephone_event_with_audio"},
	dropSRTPAuth:       {"dropped", "srtp_auth_failed"},
	dropSRTPRejected:   {"dropped", "srtp_rejected"},
	dropSRTPProtect:    {"dropped", "srtp_protect_failed"},
	dropFault:          {"dropped", "fault"},
}

func (o outcome) action() string { return outcomeLabels[o][0] }
func (o outcome) reason() string { return outcomeLabels[o][1] }

// direction of a packet through the relay.
type direction uint8

const (
	toPlatform direction = iota // carrier → platform
	toCarrier                   // platform → carrier
)

var directionLabels = [2]string{"carrier_to_platform", "platform_to_carrier"}

// metrics holds every series resolved once, so the per-packet path is an
// atomic add and nothing else.
type metrics struct {
	packets [2][numOutcomes]prometheus.Counter
	digits  [4]prometheus.Counter // by dtmf.Source
	delay   prometheus.Histogram
	active  prometheus.Gauge
	faults  [2]prometheus.Counter // by faultScope

	forkPackets [2][numForkResults]prometheus.Counter // by forkStream
	forks       prometheus.Gauge
}

// forkResult is what became of one packet copied for a recording fork.
type forkResult uint8

const (
	forkSent      forkResult = iota // handed to the kernel toward the SRS
	forkSendError                   // the send failed (the SRS's address unreachable, a full buffer)
	forkFault                       // fork code panicked: the packet and the fork were dropped
	numForkResults
)

var forkResultLabels = [numForkResults]string{"sent", "send_error", "fault"}

// faultScope is what a fault ended: one session, or a ring and its
// sessions.
type faultScope uint8

const (
	faultSession faultScope = iota
	faultRing
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	packets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tonevault_rtp_packets_total",
		Help: "RTP and RTCP packets through the media relay, by direction, what was done (relayed, replaced, dropped) and why.",
	}, []string{"direction", "action", "reason"})
	digits := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tonevault_digits_total",
		Help: "Carrier key presses after de-duplication, by the transport each was first seen on.",
	}, []string{"transport"})
	delay := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tonevault_mask_delay_seconds",
		Help: "Time from a carrier packet's arrival to its masked copy leaving toward the platform (the look-ahead plus processing).",
		// Around the 20-40 ms look-ahead, plus a tail for scheduling.
		Buckets: []float64{.005, .01, .015, .02, .025, .03, .035, .04, .045, .05, .06, .08, .1, .15, .25},
	})
	active := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tonevault_media_sessions",
		Help: "Media relay sessions open.",
	})
	faults := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tonevault_media_faults_total",
		Help: "Faults in the media relay, by scope: session (a panic relaying one call's packets; that call was ended) or ring (an io_uring ring failed; its calls were ended and the ring retired).",
	}, []string{"scope"})
	forkPackets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tonevault_recording_packets_total",
		Help: "RTP packets copied to SIPREC recording forks, by stream (customer: the masked carrier audio the platform got; agent: what the carrier got) and result (sent, send_error, fault). A fork's failures never affect its call.",
	}, []string{"stream", "result"})
	forks := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tonevault_recordings",
		Help: "SIPREC recording forks open.",
	})
	if reg != nil {
		for _, c := range []prometheus.Collector{packets, digits, delay, active, faults, forkPackets, forks} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	m := &metrics{delay: delay, active: active, forks: forks}
	for st := range m.forkPackets {
		for res := range m.forkPackets[st] {
			m.forkPackets[st][res] = forkPackets.WithLabelValues(forkStreamLabels[st], forkResultLabels[res])
		}
	}
	m.faults[faultSession] = faults.WithLabelValues("session")
	m.faults[faultRing] = faults.WithLabelValues("ring")
	for d := range m.packets {
		for o := outcome(1); o < numOutcomes; o++ {
			m.packets[d][o] = packets.WithLabelValues(directionLabels[d], o.action(), o.reason())
		}
	}
	for _, s := range []dtmf.Source{dtmf.InBand, dtmf.RFC4733, dtmf.SIPInfo} {
		m.digits[s] = digits.WithLabelValues(s.String())
	}
	return m, nil
}

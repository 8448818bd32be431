package webrtc

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	legs  prometheus.Gauge
	ended *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		legs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tonevault_webrtc_legs", Help: "Browser agent legs (PeerConnections) open now.",
		}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_webrtc_legs_ended_total", Help: "Browser agent legs ended or refused, by reason: closed (by the gateway), bad_sdp, ice_failed, dtls_failed, agent_gone.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.legs, m.ended)
	}
	return m
}

// reasonLabel is a leg's end as a metric label and audit reason code.
func reasonLabel(err error) string {
	switch {
	case err == nil:
		return "closed"
	case errors.Is(err, ErrBadSDP):
		return "bad_sdp"
	case errors.Is(err, ErrICEFailed):
		return "ice_failed"
	case errors.Is(err, ErrDTLSFailed):
		return "dtls_failed"
	case errors.Is(err, ErrGone):
		return "agent_gone"
	}
	return "failed"
}

// Reason is the code of a leg's end (Leg.Err or NewLeg's error): closed,
// bad_sdp, ice_failed, dtls_failed, agent_gone, or failed.
func Reason(err error) string { return reasonLabel(err) }

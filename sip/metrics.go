package sip

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the B2BUA's Prometheus metrics. A nil *Metrics measures
// nothing.
type Metrics struct {
	active   prometheus.Gauge
	calls    *prometheus.CounterVec
	refusedN *prometheus.CounterVec
	limitedN *prometheus.CounterVec
	infos    prometheus.Counter
}

// NewMetrics registers the metrics with reg:
//
//	tonevault_sip_active_calls               calls not yet ended
//	tonevault_sip_calls_total{outcome}       ended calls by outcome
//	tonevault_sip_requests_refused_total{trunk}  requests from peers not allowed
//	tonevault_sip_requests_limited_total{trunk,reason}  requests answered 503 by sip.limits or a drain
//	tonevault_sip_info_digits_total          SIP INFO key presses taken off the signalling
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tonevault_sip_active_calls", Help: "Calls through the gateway that have not ended.",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_calls_total", Help: "Calls that ended, by outcome.",
		}, []string{"outcome"}),
		refusedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_requests_refused_total", Help: "SIP requests refused because the peer is not allowed on the trunk.",
		}, []string{"trunk"}),
		limitedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_requests_limited_total", Help: "SIP requests answered 503: over a source's rate (rate), the call caps (max_calls, max_calls_per_source), or while draining.",
		}, []string{"trunk", "reason"}),
		infos: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tonevault_sip_info_digits_total", Help: "SIP INFO DTMF requests answered by the gateway and not forwarded.",
		}),
	}
	for _, c := range []prometheus.Collector{m.active, m.calls, m.refusedN, m.limitedN, m.infos} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) started() {
	if m != nil {
		m.active.Inc()
	}
}

func (m *Metrics) ended(outcome string) {
	if m != nil {
		m.active.Dec()
		m.calls.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) refused(trunk string) {
	if m != nil {
		m.refusedN.WithLabelValues(trunk).Inc()
	}
}

func (m *Metrics) limited(trunk, reason string) {
	if m != nil {
		m.limitedN.WithLabelValues(trunk, reason).Inc()
	}
}

func (m *Metrics) info() {
	if m != nil {
		m.infos.Inc()
	}
}

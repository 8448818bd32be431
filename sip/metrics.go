package sip

import (
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the B2BUA's Prometheus metrics. A nil *Metrics measures
// nothing.
type Metrics struct {
	active   prometheus.Gauge
	calls    *prometheus.CounterVec
	refusedN *prometheus.CounterVec
	digits   *prometheus.CounterVec
	stopped  *prometheus.CounterVec
	limitedN *prometheus.CounterVec
	failover *prometheus.CounterVec
	targets  *prometheus.GaugeVec
	expiredN *prometheus.CounterVec
	transfer *prometheus.CounterVec
	faults   *prometheus.CounterVec
	records  *prometheus.CounterVec
	recUp    *prometheus.GaugeVec
}

// NewMetrics registers the metrics with reg:
//
//	tonevault_sip_active_calls               calls not yet ended
//	tonevault_sip_calls_total{outcome}       ended calls by outcome
//	tonevault_sip_requests_refused_total{trunk}  requests from peers not allowed
//	tonevault_sip_signalled_digits_total{method}  key presses taken off the signalling (INFO, NOTIFY)
//	tonevault_sip_carrier_requests_refused_total{method,reason}
//	    requests from the carrier trunk answered by the gateway instead of
//	    going to the platform (reasons: refusedReasons)
//	tonevault_sip_requests_limited_total{trunk,reason}  requests answered 503 by sip.limits or a drain
//	tonevault_sip_failovers_total{trunk,reason}  INVITEs that moved on to the next target
//	    (timeout, unreachable, refused, unavailable)
//	tonevault_sip_target_up{trunk,target}   1 when the last OPTIONS probe got an answer
//	tonevault_sip_sessions_expired_total{trunk}  calls ended by a leg's session timer
//	tonevault_sip_transfers_total{outcome}  REFERs carried out, by outcome
//	    (transferred, or the new leg's failure)
//	tonevault_sip_faults_total{where}       panics recovered: in a request's handler
//	    (handler), a call's INVITE (invite, setup) or one of its goroutines
//	    and timers (by what it was); each ended its call only
//	tonevault_sip_recordings_total{result}  SIPREC sessions: started, ended, or why one
//	    failed (the recording.failed reasons; recording_unavailable: a call refused)
//	tonevault_sip_recorder_up{trunk}         1 when the trunk's recording server answered
//	    the last OPTIONS probe
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
		digits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_signalled_digits_total", Help: "Key presses the carrier sent in SIP INFO or NOTIFY, answered by the gateway and not forwarded.",
		}, []string{"method"}),
		stopped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_carrier_requests_refused_total", Help: "Requests from the carrier trunk that are not on the allowlist: answered by the gateway, not forwarded to the platform.",
		}, []string{"method", "reason"}),
		limitedN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_requests_limited_total", Help: "SIP requests answered 503: over a source's rate (rate), the call caps (max_calls, max_calls_per_source), or while draining.",
		}, []string{"trunk", "reason"}),
		failover: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_failovers_total", Help: "INVITEs given up on one target and sent to the next: no answer in failover_timeout (timeout), ICMP unreachable (unreachable), connection refused (refused), 503 (unavailable).",
		}, []string{"trunk", "reason"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tonevault_sip_target_up", Help: "1 when a target answered the last OPTIONS probe, 0 when not (probe_interval).",
		}, []string{"trunk", "target"}),
		expiredN: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_sessions_expired_total", Help: "Calls ended because a leg's session timer (RFC 4028) ran out, by the leg.",
		}, []string{"trunk"}),
		transfer: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_transfers_total", Help: "REFERs the gateway carried out, by outcome: transferred, or why the new leg failed.",
		}, []string{"outcome"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_faults_total", Help: "Panics recovered in the SIP B2BUA, by where: each ended the call it belonged to (call.failed, sip_fault) and no other.",
		}, []string{"where"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_sip_recordings_total", Help: "SIPREC recording sessions: started, ended, or why one failed (recorder_timeout, recorder_rejected, recorder_unreachable, recorder_bad_answer, recorder_bye, recording_fork_failed; recording_unavailable: a call refused because recording is required and the recorder is down).",
		}, []string{"result"}),
		recUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tonevault_sip_recorder_up", Help: "1 when the recording server of the trunk's calls answered the last OPTIONS probe, 0 when not (recording.probe_interval).",
		}, []string{"trunk"}),
	}
	for _, c := range []prometheus.Collector{m.active, m.calls, m.refusedN, m.digits, m.stopped, m.limitedN, m.failover, m.targets, m.expiredN, m.transfer, m.faults, m.records, m.recUp} {
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

func (m *Metrics) failedOver(trunk, reason string) {
	if m != nil {
		m.failover.WithLabelValues(trunk, reason).Inc()
	}
}

func (m *Metrics) targetUp(trunk, target string, up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.targets.WithLabelValues(trunk, target).Set(v)
	}
}

func (m *Metrics) expired(trunk string) {
	if m != nil {
		m.expiredN.WithLabelValues(trunk).Inc()
	}
}

func (m *Metrics) transferred(outcome string) {
	if m != nil {
		m.transfer.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) fault(where string) {
	if m != nil {
		m.faults.WithLabelValues(where).Inc()
	}
}

func (m *Metrics) recording(result string) {
	if m != nil {
		m.records.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) recorderUp(trunk string, up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.recUp.WithLabelValues(trunk).Set(v)
	}
}

func (m *Metrics) digit(method sip.RequestMethod, n int) {
	if m != nil && n > 0 {
		m.digits.WithLabelValues(metricMethod(method)).Add(float64(n))
	}
}

func (m *Metrics) stop(method sip.RequestMethod, r refusal) {
	if m != nil {
		m.stopped.WithLabelValues(metricMethod(method), string(r)).Inc()
	}
}

// metricMethods are the method label's values; any other method counts
// as "other", so that a peer cannot grow the label set.
var metricMethods = map[sip.RequestMethod]bool{
	sip.INVITE: true, sip.ACK: true, sip.CANCEL: true, sip.BYE: true, sip.OPTIONS: true,
	sip.INFO: true, sip.UPDATE: true, sip.MESSAGE: true, sip.NOTIFY: true, sip.SUBSCRIBE: true,
	sip.REFER: true, sip.PRACK: true, sip.PUBLISH: true, sip.REGISTER: true,
}

func metricMethod(m sip.RequestMethod) string {
	if metricMethods[m] {
		return string(m)
	}
	return "other"
}

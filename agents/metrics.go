package agents

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	signedIn prometheus.Gauge
	rings    *prometheus.CounterVec
	answers  *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		signedIn: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tonevault_agents_signed_in", Help: "Browser agent pages signed in (event streams open).",
		}),
		rings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_agent_rings_total", Help: "Calls offered to a pool of browser agents, by outcome: answered, no_agents, no_answer, deserted (every agent rung left), cancelled.",
		}, []string{"outcome"}),
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tonevault_agent_answers_total", Help: "Browser agents' answers, by outcome: answered, or why they did not connect (bad_sdp, ice_failed, dtls_failed, agent_gone).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.signedIn, m.rings, m.answers)
	}
	return m
}

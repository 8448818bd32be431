package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/agents"
	"github.com/tonevault/tonevault/audit"
	"github.com/tonevault/tonevault/configs"
	"github.com/tonevault/tonevault/media/webrtc"
)

// startAgents makes the browser agents: their WebRTC legs on
// media.bind_ip, and the pools that sip rings and the API signs agents
// into. stop ends their sessions and frees the shared ICE port.
func startAgents(cfg configs.Config, reg prometheus.Registerer, trail *audit.Queue, log *zap.Logger) (svc *agents.Service, stop func(), err error) {
	rtc, err := webrtc.NewEngine(cfg.WebRTC, cfg.Media.BindIP, webrtc.Options{Logger: log.Named("webrtc"), Registerer: reg})
	if err != nil {
		return nil, nil, err
	}
	svc, err = agents.New(cfg.Agents, rtc, agents.Options{Audit: trail, Logger: log.Named("agents"), Registerer: reg})
	if err != nil {
		rtc.Close()
		return nil, nil, err
	}
	return svc, func() { svc.Close(); rtc.Close() }, nil
}

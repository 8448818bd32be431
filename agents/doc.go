// Package agents is the contact centre's browser agents: the pools of
// agents signed in on the agent page (/agent/), the calls that ring them,
// and the calls they answer over WebRTC (package media/webrtc).
//
// # Signing in and ringing
//
// An agent page signs in with an agent token the CRM minted (package
// api): its event stream is a Session of one agent (Identity: the API key
// that minted the token, the CRM's agent id, the pools it takes). A call
// routed to a pool (package sip: a target "agents:NAME") rings every
// session of the pool that is available and not on a call: each gets an
// "incoming" event with the caller and the call's correlation headers.
// The first agent to answer (its page's SDP offer, Answer) has the call
// while its media connects; another's answer meanwhile is ErrTaken. If
// that media connects, Ring returns the agent's Leg and the others hear
// "ring_ended" (answered_elsewhere). If it does not (a bad offer, ICE or
// DTLS failing: agent.answer_failed with the reason), the call rings on.
// Nobody signed in and available is ErrNoAgents at once; nobody answering
// within the pool's ring_timeout, or every agent rung leaving, is
// ErrNoAnswer; sip then gives the caller 480 or the pool's fallback.
//
// # The call
//
// The Leg's media is a webrtc.Leg on the call's media session: the
// browser hears the session's masked output and nothing else. The agent
// ends the call with Hangup (agent_hangup), or by closing the tab
// (agent_gone): Done closes, sip sends BYE to the caller, and calls Close
// with the call's outcome, which the agent page hears and the audit trail
// records (agent.call_ended). OnCall tells the API that the agent has a
// call, so that its page may mint a widget token for it.
//
// Metrics: tonevault_agents_signed_in, tonevault_agent_rings_total,
// tonevault_agent_answers_total.
package agents

package webrtc

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Config is the "webrtc:" section of configs/tonevault.yaml: how browser
// agents' media reaches the gateway.
type Config struct {
	// STUNServers are given to the agent page and, when the gateway is
	// not ICE-lite, used by the gateway to learn its public address:
	// "stun:host:port".
	STUNServers []string `yaml:"stun_servers"`
	// TURNServers are given to the agent page, for agents whose network
	// lets no UDP through to the gateway.
	TURNServers []TURNServer `yaml:"turn_servers"`
	// PublicIP is the public address a NAT maps 1:1 to media.bind_ip: ICE
	// candidates advertise it instead of bind_ip. Unset: bind_ip.
	PublicIP netip.Addr `yaml:"public_ip"`
	// ICELite is "auto" (lite when the gateway has a public address:
	// public_ip set, or bind_ip public), "on" or "off".
	ICELite string `yaml:"ice_lite"`
	// UDPPort, when not 0, is one UDP port on media.bind_ip that every
	// agent leg's ICE shares (one port to open in a firewall). 0: each
	// leg gets a port the kernel picks.
	UDPPort int `yaml:"udp_port"`
	// ConnectTimeout bounds ICE and DTLS after the answer: an attempt not
	// connected by then fails (ice_failed or dtls_failed).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// DisconnectTimeout is how long a connected agent's media may stop
	// before the leg counts as gone (ICE failed).
	DisconnectTimeout time.Duration `yaml:"disconnect_timeout"`
}

// TURNServer is one relay the agent page may use.
type TURNServer struct {
	URL      string `yaml:"url"` // turn: or turns: URI
	Username string `yaml:"username"`
	// CredentialFile holds the password (no trailing newline counted).
	CredentialFile string `yaml:"credential_file"`
}

// Defaults of the "webrtc:" section.
const (
	DefaultConnectTimeout    = 10 * time.Second
	DefaultDisconnectTimeout = 5 * time.Second
)

// DefaultConfig is the embedded default: no STUN or TURN (loopback),
// ICE-lite only with a public address, a port per leg.
func DefaultConfig() Config {
	return Config{
		ICELite:           "auto",
		ConnectTimeout:    DefaultConnectTimeout,
		DisconnectTimeout: DefaultDisconnectTimeout,
	}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	for i, s := range c.STUNServers {
		if !strings.HasPrefix(s, "stun:") && !strings.HasPrefix(s, "stuns:") {
			return fmt.Errorf("webrtc.stun_servers[%d]: %q is not a stun: or stuns: URI", i, s)
		}
	}
	for i, t := range c.TURNServers {
		if !strings.HasPrefix(t.URL, "turn:") && !strings.HasPrefix(t.URL, "turns:") {
			return fmt.Errorf("webrtc.turn_servers[%d].url: %q is not a turn: or turns: URI", i, t.URL)
		}
		if t.Username == "" || t.CredentialFile == "" {
			return fmt.Errorf("webrtc.turn_servers[%d]: username and credential_file are required", i)
		}
	}
	if c.PublicIP.IsValid() && (c.PublicIP.IsUnspecified() || c.PublicIP.Zone() != "") {
		return fmt.Errorf("webrtc.public_ip: %v must be one concrete address", c.PublicIP)
	}
	switch c.ICELite {
	case "", "auto", "on", "off":
	default:
		return fmt.Errorf("webrtc.ice_lite: %q: want auto, on or off", c.ICELite)
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		return fmt.Errorf("webrtc.udp_port: %d outside 0-65535", c.UDPPort)
	}
	if c.ConnectTimeout < 0 {
		return errors.New("webrtc.connect_timeout: negative")
	}
	if c.DisconnectTimeout < 0 {
		return errors.New("webrtc.disconnect_timeout: negative")
	}
	return nil
}

// lite says whether the gateway's ICE agent is ICE-lite: it answers
// connectivity checks and makes none, which needs an address every agent
// can reach (RFC 8445 2.5).
func (c Config) lite(bind netip.Addr) bool {
	switch c.ICELite {
	case "on":
		return true
	case "off":
		return false
	}
	return c.PublicIP.IsValid() || public(bind)
}

// public reports an address reachable from the internet: global unicast,
// not private (RFC 1918, ULA), not loopback or link-local.
func public(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast()
}

// ICEServer is a STUN or TURN server as the page's RTCPeerConnection
// takes it.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// iceServers reads the TURN credentials: the page's list.
func (c Config) iceServers() ([]ICEServer, error) {
	var out []ICEServer
	if len(c.STUNServers) > 0 {
		out = append(out, ICEServer{URLs: append([]string(nil), c.STUNServers...)})
	}
	for i, t := range c.TURNServers {
		b, err := os.ReadFile(t.CredentialFile)
		if err != nil {
			return nil, fmt.Errorf("webrtc.turn_servers[%d].credential_file: %w", i, err)
		}
		out = append(out, ICEServer{URLs: []string{t.URL}, Username: t.Username, Credential: strings.TrimRight(string(b), "\r\n")})
	}
	return out, nil
}

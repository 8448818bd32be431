package psp

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config configures the ISO 8583 connector: the "psp:" section of the
// configuration. With no Addrs there is no acquirer, and a payment's
// submit ends in a clear "not configured" failure.
type Config struct {
	// Addrs are the acquirer's host:port. The pool keeps one connection
	// per entry: list an address twice for two connections to it.
	Addrs []string `yaml:"addrs"`
	// Kind is the message a payment's submit sends: Authorization (0100,
	// the default) or Sale (0200).
	Kind Kind `yaml:"kind"`
	// Header is the length header: Binary2 (default) or ASCII4.
	Header Header `yaml:"header"`
	// CAFile turns on TLS, trusting the PEM CAs in it. CertFile and
	// KeyFile add a client certificate (mutual TLS).
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ConnectTimeout bounds a TCP (and TLS) connect; default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// Timeout is how long to wait for a response before reversing;
	// default 20s. A shorter deadline on Authorize's ctx wins.
	Timeout time.Duration `yaml:"timeout"`
	// EchoInterval sends an 0800 echo when a connection was idle this
	// long; default 30s.
	EchoInterval time.Duration `yaml:"echo_interval"`
	// ReconnectWait and MaxReconnectWait: the pool's redial backoff;
	// defaults 1s and 30s.
	ReconnectWait    time.Duration `yaml:"reconnect_wait"`
	MaxReconnectWait time.Duration `yaml:"max_reconnect_wait"`
	// ReversalBackoff and MaxReversalBackoff: retry backoff of an
	// unacknowledged reversal; defaults 1s and 60s.
	ReversalBackoff    time.Duration `yaml:"reversal_backoff"`
	MaxReversalBackoff time.Duration `yaml:"max_reversal_backoff"`
	// LeaseMargin is how long past Timeout a gateway holds a reversal in
	// the store before another may take it: the write-ahead intent of a
	// request in flight (from the request's deadline), and a reversal
	// being sent. It covers a write to the store after the answer and
	// the skew between the gateways' clocks; after a crash it is part of
	// the wait before the reversal goes out. Default 10s.
	LeaseMargin time.Duration `yaml:"lease_margin"`
	// Terminal (field 41, up to 8) and Merchant (field 42, up to 15).
	Terminal string `yaml:"terminal_id"`
	Merchant string `yaml:"merchant_id"`
	// MCC is the merchant category code (field 18); default "5969".
	MCC string `yaml:"mcc"`
	// MOTO maps a brand ("visa", "mastercard", ...) to the indicators
	// that mark its payments as telephone orders (fields 22, 25, 60, 61).
	// An entry replaces the brand's DefaultMOTO entry whole; a brand with
	// neither gets OtherMOTO.
	MOTO map[string]MOTO `yaml:"moto"`
	// StateDir is where a previous version kept the STAN counter and the
	// reversal queue in files: they are moved into the store at start,
	// and the files removed. Empty: nothing to move.
	StateDir string `yaml:"state_dir"`
	// Logger gets operational logs (never card data). Default: none.
	Logger *zap.Logger `yaml:"-"`
	// OnReversal, when set, is told of every reversal the acquirer
	// acknowledged (for the audit trail: PCI DSS 10.2 wants the reversal
	// of an authorization recorded). It runs on the reversal worker and
	// must not block for long. A Reversal holds no card data.
	OnReversal func(Reversal) `yaml:"-"`
}

// DefaultConfig is the development default: psp-sim on 127.0.0.1:8583,
// authorizations (0100), the development terminal and merchant.
func DefaultConfig() Config {
	return Config{
		Addrs:              []string{"127.0.0.1:8583"},
		Kind:               Authorization,
		Header:             Binary2,
		ConnectTimeout:     5 * time.Second,
		Timeout:            20 * time.Second,
		EchoInterval:       30 * time.Second,
		ReconnectWait:      time.Second,
		MaxReconnectWait:   30 * time.Second,
		ReversalBackoff:    time.Second,
		MaxReversalBackoff: time.Minute,
		LeaseMargin:        10 * time.Second,
		Terminal:           "TVDEV001",
		Merchant:           "TONEVAULTDEV01",
		MCC:                "5969",
		MOTO:               map[string]MOTO{},
		StateDir:           "tonevault-psp",
	}
}

// Validate reports a setting that cannot work, naming its key. No Addrs
// is valid: the gateway then runs without an acquirer.
func (c Config) Validate() error {
	if len(c.Addrs) == 0 {
		return nil
	}
	for i, a := range c.Addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("psp.addrs[%d]: %q: want host:port", i, a)
		}
	}
	if c.Kind != Authorization && c.Kind != Sale {
		return fmt.Errorf("psp.kind: %v: want authorization or sale", c.Kind)
	}
	if c.Header != Binary2 && c.Header != ASCII4 {
		return fmt.Errorf("psp.header: %v: want binary2 or ascii4", c.Header)
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("psp.cert_file and psp.key_file go together (a client certificate needs both)")
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{
		{"psp.connect_timeout", c.ConnectTimeout}, {"psp.timeout", c.Timeout}, {"psp.echo_interval", c.EchoInterval},
		{"psp.reconnect_wait", c.ReconnectWait}, {"psp.max_reconnect_wait", c.MaxReconnectWait},
		{"psp.reversal_backoff", c.ReversalBackoff}, {"psp.max_reversal_backoff", c.MaxReversalBackoff},
		{"psp.lease_margin", c.LeaseMargin},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: %v is negative (0: the default)", d.key, d.v)
		}
	}
	if c.Terminal == "" || len(c.Terminal) > 8 || !printable(c.Terminal) {
		return fmt.Errorf("psp.terminal_id: %q: want 1 to 8 printable characters", c.Terminal)
	}
	if c.Merchant == "" || len(c.Merchant) > 15 || !printable(c.Merchant) {
		return fmt.Errorf("psp.merchant_id: %q: want 1 to 15 printable characters", c.Merchant)
	}
	if c.MCC != "" && (len(c.MCC) != 4 || !digits(c.MCC)) {
		return fmt.Errorf("psp.mcc: %q: want 4 digits", c.MCC)
	}
	for b, m := range c.MOTO {
		if err := m.validate(fmt.Sprintf("psp.moto[%q]", b)); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) withDefaults() (Config, error) {
	d := *c
	def := func(v *time.Duration, x time.Duration) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&d.ConnectTimeout, 5*time.Second)
	def(&d.Timeout, 20*time.Second)
	def(&d.EchoInterval, 30*time.Second)
	def(&d.ReconnectWait, time.Second)
	def(&d.MaxReconnectWait, 30*time.Second)
	def(&d.ReversalBackoff, time.Second)
	def(&d.MaxReversalBackoff, time.Minute)
	def(&d.LeaseMargin, 10*time.Second)
	if d.MCC == "" {
		d.MCC = "5969"
	}
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	var errs []error
	if len(d.Addrs) == 0 {
		errs = append(errs, errors.New("no acquirer address"))
	}
	if d.Terminal == "" || len(d.Terminal) > 8 || !printable(d.Terminal) {
		errs = append(errs, errors.New("terminal id must be 1 to 8 printable characters"))
	}
	if d.Merchant == "" || len(d.Merchant) > 15 || !printable(d.Merchant) {
		errs = append(errs, errors.New("merchant id must be 1 to 15 printable characters"))
	}
	if len(d.MCC) != 4 || !digits(d.MCC) {
		errs = append(errs, errors.New("MCC must be 4 digits"))
	}
	if d.Header != Binary2 && d.Header != ASCII4 {
		errs = append(errs, errors.New("unknown length header"))
	}
	if (d.CertFile == "") != (d.KeyFile == "") {
		errs = append(errs, errors.New("client certificate needs both cert and key file"))
	}
	for b, m := range d.MOTO {
		if err := m.validate(fmt.Sprintf("moto[%q]", b)); err != nil {
			errs = append(errs, err)
		}
	}
	d.MOTO = motoTable(d.MOTO)
	if err := errors.Join(errs...); err != nil {
		return d, fmt.Errorf("psp: config: %w", err)
	}
	return d, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

func digitBytes(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

// currencies maps ISO 4217 alpha-3 to numeric for field 49. Add a line for
// a currency the merchant needs.
var currencies = map[string]string{
	"AUD": "036", "BRL": "986", "CAD": "124", "CHF": "756", "CNY": "156",
	"CZK": "203", "DKK": "208", "EUR": "978", "GBP": "826", "HKD": "344",
	"HUF": "348", "INR": "356", "JPY": "392", "MXN": "484", "NOK": "578",
	"NZD": "554", "PLN": "985", "RON": "946", "SEK": "752", "SGD": "702",
	"USD": "840", "ZAR": "710",
}

// CurrencyNumeric returns the ISO 4217 numeric code of an alpha-3 code.
func CurrencyNumeric(alpha string) (string, bool) {
	n, ok := currencies[strings.ToUpper(alpha)]
	return n, ok
}

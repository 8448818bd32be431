package psp

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Config configures the ISO 8583 connector.
type Config struct {
	// Addrs are the acquirer's host:port. The pool keeps one connection
	// per entry: list an address twice for two connections to it.
	Addrs []string
	// Header is the length header: Binary2 (default) or ASCII4.
	Header Header
	// CAFile turns on TLS, trusting the PEM CAs in it. CertFile and
	// KeyFile add a client certificate (mutual TLS).
	CAFile, CertFile, KeyFile string
	// ConnectTimeout bounds a TCP (and TLS) connect; default 5s.
	ConnectTimeout time.Duration
	// Timeout is how long to wait for a response before reversing;
	// default 20s. A shorter deadline on Authorize's ctx wins.
	Timeout time.Duration
	// EchoInterval sends an 0800 echo when a connection was idle this
	// long; default 30s.
	EchoInterval time.Duration
	// ReconnectWait and MaxReconnectWait: the pool's redial backoff;
	// defaults 1s and 30s.
	ReconnectWait, MaxReconnectWait time.Duration
	// ReversalBackoff and MaxReversalBackoff: retry backoff of an
	// unacknowledged reversal; defaults 1s and 60s.
	ReversalBackoff, MaxReversalBackoff time.Duration
	// Terminal (field 41, up to 8) and Merchant (field 42, up to 15).
	Terminal, Merchant string
	// MCC is the merchant category code (field 18); default "5969".
	MCC string
	// MOTOIndicators maps a lower-case brand to field 60's value;
	// brands not listed get DefaultMOTOIndicator.
	MOTOIndicators map[string]string
	// StateDir holds the STAN counter and the reversal queue. Required.
	StateDir string
	// Logger gets operational logs (never card data). Default: none.
	Logger *zap.Logger
	// OnReversal, when set, is told of every reversal the acquirer
	// acknowledged (for the audit trail: PCI DSS 10.2 wants the reversal
	// of an authorization recorded). It runs on the reversal worker and
	// must not block for long. A Reversal holds no card data.
	OnReversal func(Reversal)
}

// DefaultMOTOIndicator is field 60 for a brand without its own entry.
const DefaultMOTOIndicator = "08"

// DefaultMOTOIndicators: Visa marks a single mail/telephone order "01"
// (ECI 1); "08" is the non-authenticated MOTO value used for the others.
// Acquirers differ: override per brand in Config.MOTOIndicators.
var DefaultMOTOIndicators = map[string]string{
	"visa":       "01",
	"mastercard": "08",
	"amex":       "08",
	"discover":   "08",
	"jcb":        "08",
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
	if d.StateDir == "" {
		errs = append(errs, errors.New("no state directory"))
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
	moto := make(map[string]string, len(DefaultMOTOIndicators)+len(d.MOTOIndicators))
	for k, v := range DefaultMOTOIndicators {
		moto[k] = v
	}
	for k, v := range d.MOTOIndicators {
		moto[strings.ToLower(k)] = v
	}
	d.MOTOIndicators = moto
	if err := errors.Join(errs...); err != nil {
		return d, fmt.Errorf("psp: config: %w", err)
	}
	return d, nil
}

func (c *Config) motoIndicator(brand string) string {
	if v, ok := c.MOTOIndicators[strings.ToLower(brand)]; ok {
		return v
	}
	return DefaultMOTOIndicator
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

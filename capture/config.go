package capture

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tonevault/tonevault/audit"
)

// Config is the "capture:" section of configs/tonevault.yaml. Zero values
// take the defaults below; a negative duration disables that timeout.
type Config struct {
	InterDigitTimeout time.Duration `yaml:"inter_digit_timeout"` // default 10s
	FieldTimeout      time.Duration `yaml:"field_timeout"`       // default 60s
	SessionTimeout    time.Duration `yaml:"session_timeout"`     // default 10m, then the session is expired
	MaxAttempts       int           `yaml:"max_attempts"`        // refused attempts per field before the session fails; default 3
	AcceptedBrands    []Brand       `yaml:"accepted_brands"`     // default: every known brand
	// MerchantBrands overrides AcceptedBrands for a PaymentRequest.Merchant.
	MerchantBrands map[string][]Brand `yaml:"merchant_brands"`
	MaskStyle      string             `yaml:"mask_style"` // "bin_last4" (default) or "last4"
	ExtraFields    []ExtraField       `yaml:"extra_fields"`
	// MaxLiveSessions caps the sessions collecting or submitting at once
	// (default 500): Start fails with ErrCapacity beyond it.
	MaxLiveSessions int `yaml:"max_live_sessions"`
	// MaxRetainedSessions caps the sessions kept in memory, live and ended
	// (default 10000): beyond it the oldest ended sessions are forgotten
	// before their Options.Retain is up, so that starting and cancelling
	// sessions in a loop cannot fill the memory.
	MaxRetainedSessions int `yaml:"max_retained_sessions"`
}

// ExtraField is a configured digit field collected after the security
// code, such as the digits of a postcode for AVS.
type ExtraField struct {
	Name      FieldName `yaml:"name"`
	MinDigits int       `yaml:"min_digits"`
	MaxDigits int       `yaml:"max_digits"`
	Label     string    `yaml:"label"`
}

// Defaults.
const (
	DefaultInterDigitTimeout = 10 * time.Second
	DefaultFieldTimeout      = 60 * time.Second
	DefaultSessionTimeout    = 10 * time.Minute
	DefaultMaxAttempts       = 3
	DefaultMaxLiveSessions   = 500
	DefaultMaxRetained       = 10000
	MaskBINLast4             = "bin_last4"
	MaskLast4                = "last4"
	// maxExtraDigits bounds an extra field's buffer.
	maxExtraDigits = 32
)

// DefaultConfig is the "capture:" section of the embedded default
// configuration.
func DefaultConfig() Config {
	return Config{
		InterDigitTimeout:   DefaultInterDigitTimeout,
		FieldTimeout:        DefaultFieldTimeout,
		SessionTimeout:      DefaultSessionTimeout,
		MaxAttempts:         DefaultMaxAttempts,
		MaskStyle:           MaskBINLast4,
		MaxLiveSessions:     DefaultMaxLiveSessions,
		MaxRetainedSessions: DefaultMaxRetained,
	}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults fills the zero values and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.InterDigitTimeout == 0 {
		c.InterDigitTimeout = DefaultInterDigitTimeout
	}
	if c.FieldTimeout == 0 {
		c.FieldTimeout = DefaultFieldTimeout
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.MaxAttempts < 0 {
		return c, errors.New("capture.max_attempts: must be positive")
	}
	if c.MaskStyle == "" {
		c.MaskStyle = MaskBINLast4
	}
	if c.MaxLiveSessions == 0 {
		c.MaxLiveSessions = DefaultMaxLiveSessions
	}
	if c.MaxRetainedSessions == 0 {
		c.MaxRetainedSessions = DefaultMaxRetained
	}
	if c.MaxLiveSessions < 0 || c.MaxRetainedSessions < c.MaxLiveSessions {
		return c, errors.New("capture.max_live_sessions and max_retained_sessions: want 0 < max_live_sessions <= max_retained_sessions")
	}
	if c.MaskStyle != MaskBINLast4 && c.MaskStyle != MaskLast4 {
		return c, fmt.Errorf("capture.mask_style: %q is not %q or %q", c.MaskStyle, MaskBINLast4, MaskLast4)
	}
	if len(c.AcceptedBrands) == 0 {
		c.AcceptedBrands = Brands()
	}
	if err := checkBrands("capture.accepted_brands", c.AcceptedBrands); err != nil {
		return c, err
	}
	for m, bs := range c.MerchantBrands {
		if err := checkBrands(fmt.Sprintf("capture.merchant_brands[%q]", m), bs); err != nil {
			return c, err
		}
	}
	seen := map[FieldName]bool{FieldCardNumber: true, FieldExpiry: true, FieldSecurityCode: true}
	c.ExtraFields = slices.Clone(c.ExtraFields)
	for i := range c.ExtraFields {
		f := &c.ExtraFields[i]
		if f.Name == "" || seen[f.Name] {
			return c, fmt.Errorf("capture.extra_fields[%d].name: %q is empty or used twice", i, f.Name)
		}
		if !audit.ValidField(string(f.Name)) {
			// The name is the field of the field's audit records.
			return c, fmt.Errorf("capture.extra_fields[%d].name: must be 1 to 32 lowercase letters and '_', starting with a letter", i)
		}
		seen[f.Name] = true
		if f.MinDigits < 1 || f.MaxDigits < f.MinDigits || f.MaxDigits > maxExtraDigits {
			return c, fmt.Errorf("capture.extra_fields[%d] (%s): want 1 <= min_digits <= max_digits <= %d", i, f.Name, maxExtraDigits)
		}
		if f.Label == "" {
			f.Label = string(f.Name)
		}
	}
	return c, nil
}

func checkBrands(key string, bs []Brand) error {
	for _, b := range bs {
		if !slices.Contains(Brands(), b) {
			return fmt.Errorf("%s: unknown brand %q", key, b)
		}
	}
	return nil
}

// accepted reports whether brand b may be used for merchant m.
func (c *Config) accepted(m string, b Brand) bool {
	if bs, ok := c.MerchantBrands[m]; ok && m != "" {
		return slices.Contains(bs, b)
	}
	return slices.Contains(c.AcceptedBrands, b)
}

package oplog

import (
	"fmt"

	"go.uber.org/zap/zapcore"
)

// Config is the "log:" section of the configuration.
type Config struct {
	// Level is the gateway's own level: debug, info, warn or error.
	Level zapcore.Level `yaml:"level"`
	// SIPLevel is sipgo's, which logs SIP messages at debug.
	SIPLevel zapcore.Level `yaml:"sip_level"`
}

// DefaultConfig logs at info, and sipgo at warn.
func DefaultConfig() Config {
	return Config{Level: zapcore.InfoLevel, SIPLevel: zapcore.WarnLevel}
}

// Validate reports a level other than debug, info, warn or error.
func (c Config) Validate() error {
	for _, l := range []struct {
		key string
		v   zapcore.Level
	}{{"log.level", c.Level}, {"log.sip_level", c.SIPLevel}} {
		if l.v < zapcore.DebugLevel || l.v > zapcore.ErrorLevel {
			return fmt.Errorf("%s: %q: want debug, info, warn or error", l.key, l.v)
		}
	}
	return nil
}

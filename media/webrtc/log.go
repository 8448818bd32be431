package webrtc

import (
	"fmt"

	"github.com/pion/logging"
	"go.uber.org/zap"
)

// pionLog routes pion's warnings and errors to the operational log
// (which masks card numbers); pion's debug and trace output, which
// includes packet dumps, is dropped.
type pionLog struct{ l *zap.Logger }

func (f pionLog) NewLogger(scope string) logging.LeveledLogger {
	return scoped{f.l.With(zap.String("pion", scope))}
}

type scoped struct{ l *zap.Logger }

func (scoped) Trace(string)                     {}
func (scoped) Tracef(string, ...any)            {}
func (scoped) Debug(string)                     {}
func (scoped) Debugf(string, ...any)            {}
func (scoped) Info(string)                      {}
func (scoped) Infof(string, ...any)             {}
func (s scoped) Warn(msg string)                { s.l.Warn(msg) }
func (s scoped) Warnf(format string, a ...any)  { s.l.Warn(fmt.Sprintf(format, a...)) }
func (s scoped) Error(msg string)               { s.l.Error(msg) }
func (s scoped) Errorf(format string, a ...any) { s.l.Error(fmt.Sprintf(format, a...)) }

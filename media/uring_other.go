//go:build !linux

package media

import (
	"errors"
	"net/netip"

	"go.uber.org/zap"
)

var errNoUring = errors.New("io_uring is Linux only")

func newUringEngine(ringSched, *zap.Logger, *metrics) (ioEngine, error) { return nil, errNoUring }

func listenRaw(netip.Addr, int) (sock, int, error) { return sock{}, 0, errNoUring }

func closeFD(int) {}

func setRecvBufFD(int, int) {}

package psp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/moov-io/iso8583"
	connection "github.com/moov-io/iso8583-connection"
	iso8583errors "github.com/moov-io/iso8583/errors"
	"github.com/moov-io/iso8583/utils"
	"go.uber.org/zap"

	"github.com/tonevault/tonevault/internal/secret"
)

// ISO is the ISO 8583:1987 connector: a pool of connections to the
// acquirer (moov-io/iso8583-connection), signed on with 0800, kept alive
// with echoes, redialled when they drop, and a reversal queue that
// survives restarts.
type ISO struct {
	cfg  Config
	log  *zap.Logger
	pool *connection.Pool
	tr   *tracer
	q    *queue
	now  func() time.Time

	kick      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ Connector = (*ISO)(nil)

// NewISO opens the state directory, starts the pool and the reversal
// worker, which first drains what a previous run left in the queue. It does
// not fail when the acquirer is down: the pool keeps redialling, and
// Authorize answers ErrUnavailable meanwhile.
func NewISO(cfg Config) (*ISO, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tr, err := openTracer(c.StateDir)
	if err != nil {
		return nil, err
	}
	q, err := openQueue(c.StateDir)
	if err != nil {
		return nil, err
	}
	x := &ISO{
		cfg:  c,
		log:  c.Logger.Named("psp"),
		tr:   tr,
		q:    q,
		now:  time.Now,
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	x.pool, err = connection.NewPool(x.dial, c.Addrs,
		connection.PoolMinConnections(0),
		connection.PoolReconnectWait(c.ReconnectWait),
		connection.PoolMaxReconnectWait(c.MaxReconnectWait),
		connection.PoolErrorHandler(func(err error) { x.log.Warn("acquirer connection", zap.String("error", safeText(err))) }),
		connection.PoolConnectionsFilter(func(conn *connection.Connection) bool {
			return conn.Status() == connection.StatusOnline
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("psp: pool: %w", err)
	}
	if err := x.pool.Connect(); err != nil {
		return nil, fmt.Errorf("psp: pool: %s", safeText(err))
	}
	x.wg.Add(1)
	go x.reversalLoop()
	return x, nil
}

// WaitReady blocks until at least one connection is signed on, or ctx ends.
func (x *ISO) WaitReady(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !x.pool.IsUp() {
		select {
		case <-ctx.Done():
			return ErrUnavailable
		case <-x.done:
			return ErrClosed
		case <-t.C:
		}
	}
	return nil
}

// Close stops the reversal worker and closes the connections. Pending
// reversals stay in the queue for the next run.
func (x *ISO) Close() error {
	x.closeOnce.Do(func() {
		close(x.done)
		x.wg.Wait()
		_ = x.pool.Close()
	})
	return nil
}

// framer adapts Header to iso8583-connection's reader and writer, so every
// message goes through Pack/Unpack with their safe errors and wiping.
type framer struct{ h Header }

func (f framer) ReadMessage(r io.Reader) (*iso8583.Message, error) { return f.h.ReadMessage(r) }

func (f framer) WriteMessage(w io.Writer, m *iso8583.Message) error {
	err := f.h.WriteMessage(w, m)
	var pe *PackError
	if errors.As(err, &pe) {
		// Tells the connection the message was never sent and it can go on.
		return &iso8583errors.PackError{Err: err}
	}
	return err
}

func (x *ISO) dial(addr string) (*connection.Connection, error) {
	opts := []connection.Option{
		connection.SetMessageReader(framer{x.cfg.Header}),
		connection.SetMessageWriter(framer{x.cfg.Header}),
		connection.ConnectTimeout(x.cfg.ConnectTimeout),
		connection.SendTimeout(x.cfg.Timeout),
		connection.IdleTime(x.cfg.EchoInterval),
		connection.PingHandler(x.echo),
		connection.InboundMessageHandler(x.inbound),
		connection.ErrorHandler(func(err error) { x.log.Warn("acquirer connection", zap.String("error", safeText(err))) }),
		connection.OnConnect(x.signOn),
	}
	if x.cfg.CAFile != "" {
		opts = append(opts, connection.RootCAs(x.cfg.CAFile))
	}
	if x.cfg.CertFile != "" {
		opts = append(opts, connection.ClientCert(x.cfg.CertFile, x.cfg.KeyFile))
	}
	return connection.New(addr, Spec, x.cfg.Header.ReadLength, x.cfg.Header.WriteLength, opts...)
}

// safeText is what may be logged of an error from moov-io: a SafeError's
// safe message instead of its cause, which can quote message content.
func safeText(err error) string {
	var se *utils.SafeError
	if errors.As(err, &se) {
		return se.Msg
	}
	var ue *iso8583errors.UnpackError
	if errors.As(err, &ue) {
		return "cannot unpack message"
	}
	return err.Error()
}

// network sends an 0800 with field 70 code and checks for an 0810 "00".
func (x *ISO) network(conn *connection.Connection, code string) error {
	stan, err := x.tr.nextSTAN()
	if err != nil {
		return err
	}
	m := iso8583.NewMessage(Spec)
	m.MTI("0800")
	now := x.now().UTC()
	for id, v := range map[int]string{fTransmission: now.Format("0102150405"), fSTAN: stan, fNetMgmt: code} {
		if err := m.Field(id, v); err != nil {
			return err
		}
	}
	resp, err := conn.Send(m)
	if err != nil {
		return fmt.Errorf("0800 %s: %s", code, safeText(err))
	}
	defer Wipe(resp)
	mti, _ := resp.GetMTI()
	rc, _ := resp.GetString(fRespCode)
	if mti != "0810" || rc != "00" {
		return fmt.Errorf("0800 %s answered %s %q", code, mti, sanitizeCode(rc))
	}
	return nil
}

// signOn runs on every new connection before the pool hands it out.
func (x *ISO) signOn(conn *connection.Connection) error {
	if err := x.network(conn, "001"); err != nil {
		return err
	}
	conn.SetStatus(connection.StatusOnline)
	x.log.Info("signed on", zap.String("addr", conn.Addr()))
	x.kickReversals()
	return nil
}

// echo runs when a connection was idle for EchoInterval. A failed echo
// closes the connection so the pool redials it.
func (x *ISO) echo(conn *connection.Connection) {
	if err := x.network(conn, "301"); err != nil {
		x.log.Warn("echo failed, reconnecting", zap.String("addr", conn.Addr()), zap.String("error", err.Error()))
		conn.TriggerFailure(errors.New("echo failed"))
	}
}

// inbound gets late responses (after their Send timed out) and requests
// from the acquirer. A late 0110/0210 is already in the reversal queue.
func (x *ISO) inbound(conn *connection.Connection, m *iso8583.Message) {
	defer Wipe(m)
	mti, _ := m.GetMTI()
	stan, _ := m.GetString(fSTAN)
	if !digits(stan) {
		stan = "?"
	}
	rc, _ := m.GetString(fRespCode)
	switch mti {
	case "0110", "0210":
		x.log.Warn("unmatched response (late, or unknown STAN); any reversal stands", zap.String("mti", mti), zap.String("stan", stan), zap.String("code", sanitizeCode(rc)))
		x.kickReversals()
	case "0800":
		reply := iso8583.NewMessage(Spec)
		reply.MTI("0810")
		for _, id := range []int{fTransmission, fSTAN, fNetMgmt} {
			if v, _ := m.GetString(id); v != "" {
				_ = reply.Field(id, v)
			}
		}
		_ = reply.Field(fRespCode, "00")
		if err := conn.Reply(reply); err != nil {
			x.log.Warn("0810 reply", zap.String("error", safeText(err)))
		}
	default:
		x.log.Warn("unexpected message from acquirer", zap.String("mti", sanitizeMTI(mti)), zap.String("stan", stan))
	}
}

func sanitizeMTI(s string) string {
	if len(s) == 4 && digits(s) {
		return s
	}
	return "????"
}

// Authorize sends an 0100 or 0200 and waits for its answer. See Connector.
func (x *ISO) Authorize(ctx context.Context, r *Request) (Response, error) {
	fail := func(reason string, err error) (Response, error) {
		return Response{Outcome: Error, Reason: reason}, err
	}
	select {
	case <-x.done:
		return fail(ReasonUnavailable, ErrClosed)
	default:
	}
	mti, cur, err := validate(r)
	if err != nil {
		return fail(ReasonInvalid, err)
	}
	timeout := x.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < timeout {
			timeout = left
		}
	}
	if timeout <= 0 || ctx.Err() != nil {
		return fail(ReasonTimeout, fmt.Errorf("%w: context done before sending", ErrUnavailable))
	}
	conn, err := x.pool.Get()
	if err != nil {
		return fail(ReasonUnavailable, ErrUnavailable)
	}
	stan, err := x.tr.nextSTAN()
	if err != nil {
		return fail(ReasonUnavailable, err)
	}
	now := x.now().UTC()
	rev := &Reversal{
		OrigMTI:      mti,
		STAN:         stan,
		RRN:          rrn(now, stan),
		Transmission: now.Format("0102150405"),
		LocalTime:    now.Format("150405"),
		LocalDate:    now.Format("0102"),
		ProcCode:     "000000",
		Amount:       r.Amount,
		Currency:     cur,
		Terminal:     x.cfg.Terminal,
		Merchant:     x.cfg.Merchant,
		Reference:    r.MerchantRef,
		Created:      now,
	}
	moto := x.cfg.moto(r.Brand)
	m, err := x.request(r, rev, moto)
	defer Wipe(m)
	if err != nil {
		return fail(ReasonInvalid, err)
	}
	resp, err := conn.Send(m, connection.SendTimeout(timeout))
	// The message is packed and sent (or given up): its card data goes now.
	Wipe(m)
	out := Response{STAN: stan, RRN: rev.RRN, MOTO: moto}
	log := x.log.With(zap.String("mti", mti), zap.String("stan", stan), zap.String("rrn", rev.RRN),
		zap.String("token", r.Token), zap.String("merchant_ref", r.MerchantRef))
	if err != nil {
		var pe *iso8583errors.PackError
		if errors.As(err, &pe) {
			log.Warn("not sent: cannot pack")
			return fail(ReasonInvalid, fmt.Errorf("%w: cannot pack the message", ErrInvalidRequest))
		}
		out.Outcome, out.Reason = Error, ReasonConnectionLost
		if errors.Is(err, connection.ErrSendTimeout) {
			out.Reason = ReasonTimeout
		}
		log.Warn("no response, reversing", zap.String("reason", out.Reason))
		x.reverse(rev, out.Reason)
		return out, nil
	}
	defer Wipe(resp)
	rmti, _ := resp.GetMTI()
	rc, _ := resp.GetString(fRespCode)
	if want := mti[:2] + "1" + mti[3:]; rmti != want || rc == "" {
		out.Outcome, out.Reason = Error, ReasonBadResponse
		log.Warn("bad response, reversing", zap.String("got_mti", sanitizeMTI(rmti)))
		x.reverse(rev, out.Reason)
		return out, nil
	}
	out.ResponseCode = sanitizeCode(rc)
	out.Outcome, out.Reason = Classify(rc)
	if v, _ := resp.GetString(fRRN); v != "" && printable(v) {
		out.RRN = v
	}
	if out.Outcome == Approved {
		out.AuthCode, _ = resp.GetString(fAuthCode)
		if !printable(out.AuthCode) {
			out.AuthCode = ""
		}
	}
	log.Info("authorization", zap.String("code", out.ResponseCode), zap.Stringer("outcome", out.Outcome), zap.String("reason", out.Reason))
	return out, nil
}

// validate checks r without ever putting card data in an error.
func validate(r *Request) (mti, cur string, err error) {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrInvalidRequest, what) }
	if r == nil {
		return "", "", bad("no request")
	}
	mti, ok := r.Kind.mti()
	if !ok {
		return "", "", bad("kind must be Authorization or Sale")
	}
	if n := r.PAN.Len(); n < 12 || n > 19 || !digitBytes(r.PAN.Bytes()) {
		return "", "", bad("PAN must be 12 to 19 digits")
	}
	if exp := r.Expiry.Bytes(); len(exp) != 4 || !digitBytes(exp) || exp[0] > '1' || (exp[0] == '1' && exp[1] > '2') || (exp[0] == '0' && exp[1] == '0') {
		return "", "", bad("expiry must be MMYY")
	}
	if n := r.CVV.Len(); n != 0 && (n < 3 || n > 4 || !digitBytes(r.CVV.Bytes())) {
		return "", "", bad("CVV must be 3 or 4 digits")
	}
	if r.Amount <= 0 || r.Amount > 999999999999 {
		return "", "", bad("amount must be 1 to 999999999999 minor units")
	}
	cur, ok = CurrencyNumeric(r.Currency)
	if !ok {
		return "", "", bad("unknown currency")
	}
	return mti, cur, nil
}

// request builds the 0100/0200. Card data goes in through BinaryField,
// which copies it into *Sensitive fields: no string of it is made.
func (x *ISO) request(r *Request, rev *Reversal, moto MOTO) (*iso8583.Message, error) {
	m := iso8583.NewMessage(Spec)
	m.MTI(rev.OrigMTI)
	fields := map[int]string{
		fProcCode:     rev.ProcCode,
		fAmount:       strconv.FormatInt(r.Amount, 10),
		fTransmission: rev.Transmission,
		fSTAN:         rev.STAN,
		fLocalTime:    rev.LocalTime,
		fLocalDate:    rev.LocalDate,
		fMCC:          x.cfg.MCC,
		fEntryMode:    moto.EntryMode,
		fCondition:    moto.Condition,
		fRRN:          rev.RRN,
		fTerminal:     rev.Terminal,
		fMerchant:     rev.Merchant,
		fCurrency:     rev.Currency,
	}
	if moto.Field60 != "" {
		fields[fMOTO] = moto.Field60
	}
	if moto.Field61 != "" {
		fields[fPOSData] = moto.Field61
	}
	for id, v := range fields {
		if err := m.Field(id, v); err != nil {
			return m, fmt.Errorf("%w: field %d", ErrInvalidRequest, id)
		}
	}
	if err := m.BinaryField(fPAN, r.PAN.Bytes()); err != nil {
		return m, fmt.Errorf("%w: PAN", ErrInvalidRequest)
	}
	// Field 14 is YYMM; the keypad gave MMYY.
	exp := r.Expiry.Bytes()
	yymm := []byte{exp[2], exp[3], exp[0], exp[1]}
	err := m.BinaryField(fExpiry, yymm)
	secret.Wipe(yymm)
	if err != nil {
		return m, fmt.Errorf("%w: expiry", ErrInvalidRequest)
	}
	if r.CVV.Len() > 0 {
		if err := m.BinaryField(fCVV, r.CVV.Bytes()); err != nil {
			return m, fmt.Errorf("%w: CVV", ErrInvalidRequest)
		}
	}
	return m, nil
}

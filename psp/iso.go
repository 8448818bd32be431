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
// with echoes, redialled when they drop, and a reversal queue in the
// store, written ahead of each request, that survives restarts and is
// shared by the gateways on one database.
type ISO struct {
	cfg   Config
	log   *zap.Logger
	pool  *connection.Pool
	st    Store
	owner string // this connector's name in the store's leases
	tr    *tracer
	now   func() time.Time

	kick      chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

var _ Connector = (*ISO)(nil)

// NewISO moves a previous version's files in Config.StateDir into st,
// starts the pool and the reversal worker, which first sends what is due
// in the queue (what a previous run, or a gateway that died, left). It
// does not fail when the acquirer is down: the pool keeps redialling, and
// Authorize answers ErrUnavailable meanwhile.
func NewISO(cfg Config, st Store) (*ISO, error) {
	c, err := cfg.withDefaults()
	if st == nil {
		err = errors.Join(err, errors.New("psp: no store (the reversal queue and the STAN counter live there)"))
	}
	if err != nil {
		return nil, err
	}
	x := &ISO{
		cfg:   c,
		log:   c.Logger.Named("psp"),
		st:    st,
		owner: leaseOwner(),
		tr:    newTracer(st, c.Terminal),
		now:   time.Now,
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
	}
	mctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	err = migrateStateDir(mctx, c.StateDir, c.Terminal, st, x.log)
	cancel()
	if err != nil {
		return nil, err
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
// reversals stay in the store for the next run, or another gateway.
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
	ctx, cancel := dbContext()
	stan, err := x.tr.nextSTAN(ctx)
	cancel()
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
		x.log.Warn("unmatched response (late, or unknown STAN); its reversal stands", zap.String("mti", mti), zap.String("stan", stan), zap.String("code", sanitizeCode(rc)))
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
	deadline := x.now().Add(x.cfg.Timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	if !deadline.After(x.now()) || ctx.Err() != nil {
		return fail(ReasonTimeout, fmt.Errorf("%w: context done before sending", ErrUnavailable))
	}
	conn, err := x.pool.Get()
	if err != nil {
		return fail(ReasonUnavailable, ErrUnavailable)
	}
	stan, err := x.tr.nextSTAN(ctx)
	if err != nil {
		return fail(ReasonUnavailable, fmt.Errorf("%w: %w", ErrUnavailable, err))
	}
	// The reversal's own STAN is taken now, so that the intent holds all
	// a reversal needs, whoever sends it.
	revSTAN, err := x.tr.nextSTAN(ctx)
	if err != nil {
		return fail(ReasonUnavailable, fmt.Errorf("%w: %w", ErrUnavailable, err))
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
		// What a reversal says if nobody gets to say more: the process
		// died with the request in flight, and its connection with it.
		Reason:  ReasonConnectionLost,
		RevSTAN: revSTAN,
		Created: now,
	}
	moto := x.cfg.moto(r.Brand)
	m, err := x.request(r, rev, moto)
	defer Wipe(m)
	if err != nil {
		return fail(ReasonInvalid, err)
	}
	log := x.log.With(zap.String("mti", mti), zap.String("stan", stan), zap.String("rrn", rev.RRN),
		zap.String("token", r.Token), zap.String("merchant_ref", r.MerchantRef))
	// Write ahead: the reversal is in the store before the request
	// leaves, so that a crash while it is out still reverses it.
	if err := x.writeIntent(ctx, rev, deadline); err != nil {
		log.Error("not sent: the reversal could not be written ahead", zap.Error(err))
		return fail(ReasonUnavailable, fmt.Errorf("%w: the reversal could not be written ahead", ErrUnavailable))
	}
	timeout := time.Until(deadline)
	if timeout <= 0 {
		x.dropIntent(rev, log)
		return fail(ReasonTimeout, fmt.Errorf("%w: context done before sending", ErrUnavailable))
	}
	resp, err := conn.Send(m, connection.SendTimeout(timeout))
	// The message is packed and sent (or given up): its card data goes now.
	Wipe(m)
	out := Response{STAN: stan, RRN: rev.RRN, MOTO: moto}
	if err != nil {
		var pe *iso8583errors.PackError
		if errors.As(err, &pe) {
			log.Warn("not sent: cannot pack")
			x.dropIntent(rev, log)
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
	// A definite answer: nothing to reverse. An approval stands only if
	// its intent is cleared; otherwise the intent is (or will be) sent
	// as a reversal, so the customer is told what the acquirer will end
	// with.
	if err := x.clearIntent(rev); err != nil {
		if out.Outcome == Approved {
			log.Error("approval not kept: its reversal was written ahead and could not be cleared, so it is reversed",
				zap.String("code", out.ResponseCode), zap.Error(err))
			out.Outcome, out.Reason, out.AuthCode = Error, ReasonTimeout, ""
			x.reverse(rev, ReasonTimeout)
			return out, nil
		}
		log.Warn("the answer's reversal intent could not be cleared: a reversal of it will be sent", zap.Error(err))
	}
	log.Info("authorization", zap.String("code", out.ResponseCode), zap.Stringer("outcome", out.Outcome), zap.String("reason", out.Reason))
	return out, nil
}

// dropIntent removes the intent of a request that never left: there is
// nothing to reverse. If the store cannot, the intent stays, and the
// acquirer answers its reversal 25 (no such original).
func (x *ISO) dropIntent(rev *Reversal, log *zap.Logger) {
	if err := x.clearIntent(rev); err != nil {
		log.Warn("the reversal intent of a request not sent could not be removed", zap.Error(err))
	}
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
		return "", "", bad("amount must be positive and have at most 12 digits (minor units)")
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

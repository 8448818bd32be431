package psp

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"time"

	"github.com/tonevault/tonevault/store"
)

// Store is the connector's part of the gateway's database, which
// *store.Store provides: the reversal queue, the write-ahead intents of
// requests in flight (reversals queued already leased to this connector),
// and the STAN counter. Several gateways may share it: each reversal is
// leased to one of them at a time, and each reserves STANs of its own.
type Store interface {
	EnqueueReversal(ctx context.Context, r store.Reversal) (bool, error)
	LeaseReversals(ctx context.Context, owner string, max int, d time.Duration) ([]store.Reversal, error)
	AckReversal(ctx context.Context, id, owner string) error
	ReleaseReversal(ctx context.Context, id, owner, reason string, next time.Time) error
	RetryReversal(ctx context.Context, id, owner string, next time.Time) error
	ListReversals(ctx context.Context) ([]store.Reversal, error)
	AdvanceCounter(ctx context.Context, name string, by, atLeast int64) (int64, error)
}

var _ Store = (*store.Store)(nil)

// dbTimeout bounds one call to the store. A call on the way to the
// acquirer fails the payment before anything is sent; one after the
// answer leaves the intent to be reversed when its lease runs out.
const dbTimeout = 10 * time.Second

func dbContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), dbTimeout)
}

// leaseOwner names this connector in the store's leases: the host, for
// an operator reading the queue, and random letters, so that a restarted
// process is not taken for the one that held a lease before it (which it
// could then acknowledge in its place).
func leaseOwner() string {
	host, _ := os.Hostname()
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	host = strings.Trim(string(b), "-")
	if host == "" {
		host = "psp"
	}
	// Letters only: a run of random digits could pass for a card number,
	// which the store refuses in any column.
	r := make([]byte, 12)
	_, _ = rand.Read(r)
	for i := range r {
		r[i] = 'a' + r[i]%26
	}
	return host + "-" + string(r)
}

func (r *Reversal) toStore() store.Reversal {
	return store.Reversal{
		OrigMTI: r.OrigMTI, STAN: r.STAN, RRN: r.RRN, Transmission: r.Transmission, LocalTime: r.LocalTime,
		LocalDate: r.LocalDate, ProcCode: r.ProcCode, Amount: r.Amount, Currency: r.Currency, Terminal: r.Terminal,
		Merchant: r.Merchant, Reference: r.Reference, Reason: r.Reason, RevSTAN: r.RevSTAN, Attempts: r.Attempts,
		CreatedAt: r.Created,
	}
}

func fromStore(s store.Reversal) Reversal {
	return Reversal{
		OrigMTI: s.OrigMTI, STAN: s.STAN, RRN: s.RRN, Transmission: s.Transmission, LocalTime: s.LocalTime,
		LocalDate: s.LocalDate, ProcCode: s.ProcCode, Amount: s.Amount, Currency: s.Currency, Terminal: s.Terminal,
		Merchant: s.Merchant, Reference: s.Reference, Reason: s.Reason, RevSTAN: s.RevSTAN, Attempts: s.Attempts,
		Created: s.CreatedAt,
	}
}

package store

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tonevault/tonevault/test/pgserver"
)

// One PostgreSQL server for the package's tests, started by the first
// test that needs it; each test gets a database of its own.
var pg struct {
	once sync.Once
	srv  *pgserver.Server
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.srv != nil {
		pg.srv.Stop()
	}
	os.Exit(code)
}

func pgServer(t testing.TB) *pgserver.Server {
	t.Helper()
	pg.once.Do(func() { pg.srv, pg.err = pgserver.Launch() })
	if pg.err != nil {
		pgserver.SkipOrFail(t, pg.err)
	}
	return pg.srv
}

// clock is a settable time source: leases, backoff and expiry are tested
// by moving it, never by sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// backend opens stores of one driver.
type backend struct {
	name string
	// config returns a Config for a new, empty database.
	config func(t testing.TB) Config
}

var backends = []backend{
	{DriverSQLite, func(t testing.TB) Config {
		c := DefaultConfig()
		c.SQLite.Path = filepath.Join(t.TempDir(), "tonevault.db")
		return c
	}},
	{DriverPostgres, func(t testing.TB) Config {
		c := DefaultConfig()
		c.Driver = DriverPostgres
		c.Postgres.URL = pgServer(t).NewDatabase(t)
		return c
	}},
}

// each runs fn against a fresh store of every driver, with a fake clock.
func each(t *testing.T, fn func(t *testing.T, s *Store, c *clock)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			c := newClock()
			cfg := b.config(t)
			cfg.Now = c.Now
			fn(t, openT(t, cfg), c)
		})
	}
}

func openT(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(ctx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

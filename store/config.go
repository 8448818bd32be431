package store

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Drivers of Config.Driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Config is the "store:" section of the configuration.
type Config struct {
	// Driver is DriverSQLite (embedded, one gateway) or DriverPostgres
	// (several gateways sharing one database).
	Driver   string         `yaml:"driver"`
	SQLite   SQLiteConfig   `yaml:"sqlite"`
	Postgres PostgresConfig `yaml:"postgres"`
	Outbox   OutboxConfig   `yaml:"outbox"`
	// Now is the clock for timestamps, leases and expiry; nil is
	// time.Now. Nodes sharing a PostgreSQL database compare their clocks
	// through leases: keep them synchronised (NTP), far closer than the
	// shortest lease.
	Now func() time.Time `yaml:"-"`
}

// SQLiteConfig is "store.sqlite:".
type SQLiteConfig struct {
	// Path is the database file; SQLite keeps Path-wal and Path-shm
	// beside it.
	Path string `yaml:"path"`
	// BusyTimeout is how long a statement waits for a lock another
	// connection holds before it fails.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
}

// PostgresConfig is "store.postgres:".
type PostgresConfig struct {
	// URL is a postgres:// URL without a password
	// ("postgres://tonevault@db.example:5432/tonevault?sslmode=verify-full").
	URL string `yaml:"url"`
	// PasswordFile holds the password (one line). Empty: the URL's
	// server trusts the client (certificate, peer), or PGPASSFILE.
	PasswordFile string `yaml:"password_file"`
	// MaxConns caps the connections this gateway opens.
	MaxConns int `yaml:"max_conns"`
}

// OutboxConfig is "store.outbox:": when a failed delivery is tried again.
type OutboxConfig struct {
	// Backoff is the wait after the first failure, doubled after each
	// further one up to MaxBackoff, with jitter.
	Backoff    time.Duration `yaml:"backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
}

// DefaultConfig is the development default: SQLite in tonevault.db in the
// working directory.
func DefaultConfig() Config {
	return Config{
		Driver:   DriverSQLite,
		SQLite:   SQLiteConfig{Path: "tonevault.db", BusyTimeout: 5 * time.Second},
		Postgres: PostgresConfig{MaxConns: 8},
		Outbox:   OutboxConfig{Backoff: time.Second, MaxBackoff: 5 * time.Minute},
	}
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	switch c.Driver {
	case DriverSQLite:
		if c.SQLite.Path == "" {
			return errors.New("store.sqlite.path: empty (the database file)")
		}
		if strings.Contains(c.SQLite.Path, "?") {
			// The driver reads what follows a '?' as its options.
			return fmt.Errorf("store.sqlite.path: %q: a file name with '?' is not supported", c.SQLite.Path)
		}
	case DriverPostgres:
		if err := c.Postgres.validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("store.driver: %q: want %s or %s", c.Driver, DriverSQLite, DriverPostgres)
	}
	if c.SQLite.BusyTimeout < 0 {
		return fmt.Errorf("store.sqlite.busy_timeout: %v is negative", c.SQLite.BusyTimeout)
	}
	if c.Postgres.MaxConns < 1 {
		return fmt.Errorf("store.postgres.max_conns: %d: want at least 1", c.Postgres.MaxConns)
	}
	if c.Outbox.Backoff <= 0 {
		return fmt.Errorf("store.outbox.backoff: %v: want more than 0", c.Outbox.Backoff)
	}
	if c.Outbox.MaxBackoff < c.Outbox.Backoff {
		return fmt.Errorf("store.outbox.max_backoff: %v is less than store.outbox.backoff %v", c.Outbox.MaxBackoff, c.Outbox.Backoff)
	}
	return nil
}

func (c PostgresConfig) validate() error {
	if c.URL == "" {
		return errors.New("store.postgres.url: empty (postgres://user@host:5432/database)")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// url's error quotes the URL, which may hold a password.
		return errors.New("store.postgres.url: not a URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("store.postgres.url: scheme %q: want postgres://", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("store.postgres.url: no host")
	}
	if _, ok := u.User.Password(); ok || u.Query().Has("password") {
		return errors.New("store.postgres.url: holds a password; put it in store.postgres.password_file (the configuration holds no secrets)")
	}
	return nil
}

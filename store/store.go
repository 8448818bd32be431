package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	_ "modernc.org/sqlite" // registers "sqlite"
)

//go:embed migrations/*.sql
var embedded embed.FS

// Migrations are the schema's versioned migrations, one text for both
// drivers.
func Migrations() fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		panic(err) // the embedded folder is there at build time
	}
	return sub
}

var (
	// ErrNotFound: no such row.
	ErrNotFound = errors.New("store: not found")
	// ErrSchemaTooNew: the database was migrated by a newer binary. The
	// error is a *SchemaError, which names both versions.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
	// ErrNotLeased: the caller no longer holds the lease (or idempotency
	// claim) it acts under: another node took the row after the lease
	// ran out, or the row is gone.
	ErrNotLeased = errors.New("store: not leased by this owner")
	// ErrBadCursor: a page cursor this store did not hand out.
	ErrBadCursor = errors.New("store: invalid page cursor")
)

// SchemaError is a database whose schema this binary does not know.
type SchemaError struct {
	Database int64 // the database's schema version
	Binary   int64 // the newest version this binary carries
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("store: the database's schema is version %d, newer than version %d, the newest this binary knows: "+
		"run a binary at least as new as the one that migrated it", e.Database, e.Binary)
}

func (e *SchemaError) Is(target error) bool { return target == ErrSchemaTooNew }

// Store is the gateway's database. It is safe for concurrent use, and
// several gateways may share one PostgreSQL database.
type Store struct {
	driver string
	w      *sql.DB // writes; SQLite: one connection
	r      *sql.DB // reads; PostgreSQL: the same pool as w
	now    func() time.Time
	outbox OutboxConfig
	schema int64
}

// sqliteReaders is the SQLite read pool's size: WAL lets readers run
// beside the one writer; more than the machine's cores buys nothing.
const sqliteReaders = 4

// Open opens the database cfg names (creating an SQLite file when
// missing), applies the migrations it lacks and returns the Store. A
// database migrated by a newer binary is refused with a *SchemaError.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return open(ctx, cfg, Migrations())
}

func open(ctx context.Context, cfg Config, migrations fs.FS) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{driver: cfg.Driver, now: cfg.Now, outbox: cfg.Outbox}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	switch cfg.Driver {
	case DriverSQLite:
		err = s.openSQLite(cfg.SQLite)
	case DriverPostgres:
		err = s.openPostgres(cfg.Postgres)
	}
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx, migrations); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openSQLite opens the file with one writing connection and a small pool
// of read-only ones. WAL lets those readers work while the writer
// commits; one writer means writes queue in Go, in order, instead of
// failing with SQLITE_BUSY, and every write transaction starts IMMEDIATE
// so that it never has to upgrade a read lock. synchronous=FULL makes a
// commit durable before it returns: a queued reversal must survive a
// power cut.
func (s *Store) openSQLite(c SQLiteConfig) error {
	if dir := filepath.Dir(c.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: %w", err)
		}
	}
	// Created here, not by SQLite, so that it is private from the start;
	// SQLite gives the -wal and -shm files the database file's mode.
	f, err := os.OpenFile(c.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_ = f.Close()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(c.BusyTimeout.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	base := c.Path + "?"
	w, err := sql.Open("sqlite", base+q.Encode()+"&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	q.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+q.Encode())
	if err != nil {
		_ = w.Close()
		return fmt.Errorf("store: %w", err)
	}
	r.SetMaxOpenConns(sqliteReaders)
	r.SetMaxIdleConns(sqliteReaders)
	s.w, s.r = w, r
	return nil
}

// openPostgres opens a pool through pgx's database/sql driver, so that
// one implementation serves both databases.
func (s *Store) openPostgres(c PostgresConfig) error {
	cc, err := pgx.ParseConfig(c.URL)
	if err != nil {
		return errors.New("store.postgres.url: pgx cannot parse it")
	}
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return fmt.Errorf("store.postgres.password_file: %w", err)
		}
		cc.Password = strings.TrimRight(string(b), "\r\n")
	}
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(c.MaxConns)
	db.SetMaxIdleConns(c.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.w, s.r = db, db
	return nil
}

// migrate applies the migrations the database lacks, after refusing a
// database whose version is newer than the newest migration here. On
// PostgreSQL an advisory lock keeps two gateways starting together from
// migrating at once.
func (s *Store) migrate(ctx context.Context, migrations fs.FS) error {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true)}
	if s.driver == DriverPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("store: migrations: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, s.w, migrations, opts...)
	if err != nil {
		return fmt.Errorf("store: migrations: %w", err)
	}
	src := p.ListSources()
	binary := src[len(src)-1].Version
	current, err := p.GetDBVersion(ctx)
	if err != nil {
		return fmt.Errorf("store: reading the schema version: %w", err)
	}
	if current > binary {
		return &SchemaError{Database: current, Binary: binary}
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("store: migrating the schema from version %d to %d: %w", current, binary, err)
	}
	s.schema = binary
	return nil
}

// SchemaVersion is the schema version the database is at.
func (s *Store) SchemaVersion() int64 { return s.schema }

// Driver is DriverSQLite or DriverPostgres.
func (s *Store) Driver() string { return s.driver }

// Ping checks that the database answers (for a readiness probe).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	err := s.w.Close()
	if s.r != s.w {
		err = errors.Join(err, s.r.Close())
	}
	return err
}

// tx runs fn in a transaction on the writer and commits it when fn
// returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Times are stored as Unix nanoseconds (BIGINT on both databases, so that
// neither driver's notion of a timestamp type is involved); 0 is no time.

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func bit(b bool) int {
	if b {
		return 1
	}
	return 0
}

// placeholders returns "$from, $from+1, ..." for n parameters: pgx wants
// $N, and modernc.org/sqlite binds $N to the N-th argument as well, so
// one query text serves both.
func placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// newestSchema is the version of the newest migration in migrations/.
const newestSchema = 3

func TestOpenMigrates(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			s := openT(t, cfg)
			if s.SchemaVersion() != newestSchema || s.Driver() != b.name {
				t.Fatalf("schema %d driver %s", s.SchemaVersion(), s.Driver())
			}
			if err := s.Ping(ctx(t)); err != nil {
				t.Fatal(err)
			}
			if _, err := s.UpsertPayment(ctx(t), testPayment("pay-a", "call-a", 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Ping(ctx(t)); err == nil {
				t.Error("a closed store answers Ping")
			}
			// Opening again finds the schema in place and the data kept.
			s = openT(t, cfg)
			if _, err := s.GetPayment(ctx(t), "pay-a"); err != nil {
				t.Fatalf("after reopening: %v", err)
			}
		})
	}
}

func TestSQLiteFile(t *testing.T) {
	cfg := backends[0].config(t)
	s := openT(t, cfg)
	var mode string
	if err := s.r.QueryRowContext(ctx(t), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q, %v; want wal", mode, err)
	}
	var busy int
	if err := s.r.QueryRowContext(ctx(t), "PRAGMA busy_timeout").Scan(&busy); err != nil || busy != 5000 {
		t.Errorf("busy_timeout %d, %v; want 5000", busy, err)
	}
	if _, err := s.r.ExecContext(ctx(t), "DELETE FROM payments"); err == nil {
		t.Error("the read pool could write")
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		st, err := os.Stat(cfg.SQLite.Path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s%s has mode %v: others can read it", cfg.SQLite.Path, suffix, st.Mode().Perm())
		}
	}
}

// future is the embedded migrations plus one from a later binary.
func future(t *testing.T) fs.FS {
	m := fstest.MapFS{}
	err := fs.WalkDir(Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(Migrations(), path)
		m[path] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	m["00042_later.sql"] = &fstest.MapFile{Data: []byte("-- +goose Up\nCREATE TABLE later (id TEXT PRIMARY KEY);\n-- +goose Down\nDROP TABLE later;\n")}
	return m
}

func TestNewerSchemaRefused(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			s, err := open(ctx(t), cfg, future(t))
			if err != nil {
				t.Fatal(err)
			}
			if s.SchemaVersion() != 42 {
				t.Fatalf("the later binary migrated to %d", s.SchemaVersion())
			}
			_ = s.Close()
			_, err = Open(ctx(t), cfg)
			var se *SchemaError
			if !errors.Is(err, ErrSchemaTooNew) || !errors.As(err, &se) || se.Database != 42 || se.Binary != newestSchema {
				t.Fatalf("opening a newer database: %v, want a SchemaError 42 > %d", err, newestSchema)
			}
			if msg := err.Error(); !strings.Contains(msg, "version 42") || !strings.Contains(msg, fmt.Sprintf("version %d", newestSchema)) {
				t.Errorf("error %q does not name both versions", msg)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(c *Config)
		wantErr string
	}{
		{"default", func(c *Config) {}, ""},
		{"unknown driver", func(c *Config) { c.Driver = "mysql" }, "store.driver"},
		{"no sqlite path", func(c *Config) { c.SQLite.Path = "" }, "store.sqlite.path"},
		{"question mark in path", func(c *Config) { c.SQLite.Path = "a?b.db" }, "store.sqlite.path"},
		{"negative busy timeout", func(c *Config) { c.SQLite.BusyTimeout = -time.Second }, "store.sqlite.busy_timeout"},
		{"postgres without url", func(c *Config) { c.Driver = DriverPostgres }, "store.postgres.url"},
		{"postgres url", func(c *Config) {
			c.Driver, c.Postgres.URL = DriverPostgres, "postgres://tv@db.example:5432/tv?sslmode=verify-full"
		}, ""},
		{"password in url", func(c *Config) {
			c.Driver, c.Postgres.URL = DriverPostgres, "postgres://tv:hunter2@db.example/tv"
		}, "store.postgres.url: holds a password"},
		{"password parameter", func(c *Config) {
			c.Driver, c.Postgres.URL = DriverPostgres, "postgres://tv@db.example/tv?password=hunter2"
		}, "store.postgres.url: holds a password"},
		{"not postgres", func(c *Config) { c.Driver, c.Postgres.URL = DriverPostgres, "mysql://db.example/tv" }, "store.postgres.url"},
		{"no host", func(c *Config) { c.Driver, c.Postgres.URL = DriverPostgres, "postgres:///tv" }, "store.postgres.url: no host"},
		{"no connections", func(c *Config) { c.Postgres.MaxConns = 0 }, "store.postgres.max_conns"},
		{"no backoff", func(c *Config) { c.Outbox.Backoff = 0 }, "store.outbox.backoff"},
		{"max below backoff", func(c *Config) { c.Outbox.MaxBackoff = time.Millisecond }, "store.outbox.max_backoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.change(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one with %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestPasswordFile(t *testing.T) {
	cfg := backends[1].config(t)
	// The test cluster trusts loopback connections, so any password
	// works: what is tested is that a missing file is an error naming
	// the key, and that a file is read.
	cfg.Postgres.PasswordFile = t.TempDir() + "/missing"
	if _, err := Open(ctx(t), cfg); err == nil || !strings.Contains(err.Error(), "store.postgres.password_file") {
		t.Errorf("missing password file: %v", err)
	}
	cfg.Postgres.PasswordFile = t.TempDir() + "/pw"
	if err := os.WriteFile(cfg.Postgres.PasswordFile, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openT(t, cfg)
	if s.SchemaVersion() != newestSchema {
		t.Errorf("schema %d", s.SchemaVersion())
	}
}

// first is the embedded migrations up to version 1 only: a database of
// the first binary that had the store.
func first(t *testing.T) fs.FS {
	b, err := fs.ReadFile(Migrations(), "00001_initial.sql")
	if err != nil {
		t.Fatal(err)
	}
	return fstest.MapFS{"00001_initial.sql": &fstest.MapFile{Data: b}}
}

// TestUpgradeFromFirstSchema: a database written at version 1 is
// migrated to the newest by Open, its payments and reversals kept, and
// the new columns work.
func TestUpgradeFromFirstSchema(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cfg := b.config(t)
			old, err := open(ctx(t), cfg, first(t))
			if err != nil {
				t.Fatal(err)
			}
			if old.SchemaVersion() != 1 {
				t.Fatalf("schema %d", old.SchemaVersion())
			}
			// Written as the first binary wrote it: without the columns
			// the second migration adds.
			if _, err := old.w.ExecContext(ctx(t), `INSERT INTO payments (id, call_id, state, final, reason, amount, currency,
				merchant_ref, description, merchant, brand, masked_pan, token, outcome, auth_code, response_code,
				version, created_at, updated_at, expires_at)
				VALUES ('pay-old', 'call-old', 'approved', 1, '', 1250, 'GBP', '', '', '', 'visa', '411111******1111', '',
				'approved', 'T00001', '00', 3, 1, 1, 0)`); err != nil {
				t.Fatal(err)
			}
			if _, err := old.EnqueueReversal(ctx(t), testReversal("000001")); err != nil {
				t.Fatal(err)
			}
			_ = old.Close()

			s := openT(t, cfg)
			if s.SchemaVersion() != newestSchema {
				t.Fatalf("schema %d after upgrade", s.SchemaVersion())
			}
			p, err := s.GetPayment(ctx(t), "pay-old")
			if err != nil || p.AuthCode != "T00001" || p.EntryMode != "" || p.Field60 != "" {
				t.Fatalf("old payment after upgrade: %+v, %v", p, err)
			}
			if rs, err := s.ListReversals(ctx(t)); err != nil || len(rs) != 1 {
				t.Fatalf("reversals after upgrade: %v, %v", stans(rs), err)
			}
			p.Version++
			p.EntryMode, p.ConditionCode, p.Field61 = "012", "08", "203310000"
			if ok, err := s.UpsertPayment(ctx(t), p); err != nil || !ok {
				t.Fatalf("update: %v %v", ok, err)
			}
			if got, _ := s.GetPayment(ctx(t), "pay-old"); got.Field61 != "203310000" || got.ConditionCode != "08" {
				t.Errorf("indicators not kept: %+v", got)
			}
			if _, err := s.AdvanceCounter(ctx(t), "stan/T1", 1, 0); err != nil {
				t.Errorf("counters after upgrade: %v", err)
			}
		})
	}
}

package pgserver

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestServer(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := s.NewDatabase(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE planted (v TEXT); INSERT INTO planted VALUES ('control-value-7')"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	db := url[strings.LastIndex(url, "/")+1 : strings.Index(url, "?")]
	dump, err := s.Dump(db)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CREATE TABLE public.planted", "control-value-7"} {
		if !strings.Contains(string(dump), want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	dir := s.Dir
	s.Stop()
	if _, err := pgx.Connect(ctx, url); err == nil {
		t.Error("server answers after Stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cluster directory %s left behind: %v", dir, err)
	}
}

func TestBinDirOverride(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	if _, err := BinDir(); err == nil || !strings.Contains(err.Error(), EnvBinDir) {
		t.Errorf("BinDir with an empty %s: %v, want an error naming it", EnvBinDir, err)
	}
}

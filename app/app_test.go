package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testdb"
)

// Closing the app does not wait forever for a connection still in use
// (work stuck past the shutdown): the process can exit.
func TestCloseDoesNotWaitForeverForAConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := app.DefaultConfig()
	cfg.DatabaseURL = testdb.New(t)
	cfg.MasterKey = testdb.MasterKey
	a, err := app.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Parts: app.PartServer})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := a.Pool().Acquire(ctx) // never released before Close
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { a.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close still waits for the connection in use")
	}
	conn.Release()
}

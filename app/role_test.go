package app_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/migrations"
)

// A deployment that migrates as the owner and serves as a login role that
// is a member of the server's role alone (README, "The log is
// append-only"): serve's migration finds nothing to do, the process opens,
// and it cannot remove an event.
func TestServeAsAMemberOfTheServerRole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ownerURL := testdb.Migrated(t)
	login := fmt.Sprintf("arq_login_%d", time.Now().UnixNano())
	admin, err := pgx.Connect(ctx, testdb.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+login+" LOGIN IN ROLE "+migrations.ServerRole); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(ctx, testdb.AdminURL()); err == nil {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+login)
			_ = c.Close(ctx)
		}
	})
	pc, err := pgx.ParseConfig(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.DefaultConfig()
	// The login role has no password: the test server trusts local users.
	cfg.DatabaseURL = fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", login, pc.Host, pc.Port, pc.Database)
	cfg.MasterKey = testdb.MasterKey
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := app.Migrate(ctx, cfg, log); err != nil {
		t.Fatalf("serve's migration, as the login role: %v", err)
	}
	a, err := app.Open(ctx, cfg, log, app.Options{Parts: app.PartCommands})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var session, current string
	if err := a.Pool().QueryRow(ctx, `SELECT session_user, current_user`).Scan(&session, &current); err != nil {
		t.Fatal(err)
	}
	if session != login || current != migrations.ServerRole {
		t.Fatalf("logged in as %s, running as %s; want %s as %s", session, current, login, migrations.ServerRole)
	}
	_, err = a.Pool().Exec(ctx, `DELETE FROM events`)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "42501" {
		t.Fatalf("delete from the log: %v, want permission denied", err)
	}
}

// Package testdb gives each test its own Postgres database with ARQ's
// migrations applied, so tests run in parallel and in any order against the
// real server. A test fails, never skips, when Postgres is unreachable.
package testdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/internal/pgcancel"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/migrations"
)

// MasterKey is the master key of the processes tests open, unless a test
// gives its own: one for all, as the key store of each test database is
// its own. Tests never make or read a key file of the user running them.
const MasterKey = "dGVzdHMtb25seS1tYXN0ZXIta2V5LTMyLWJ5dGVzISE="

// LogSigningKey signs the log checkpoints of the processes tests open,
// unless a test gives its own; LogVerifierKey checks them.
const (
	LogSigningKey  = "PRIVATE+KEY+arq-tests+8663b165+AV7YzDvGC8H00/ZrBgiJgw8WZ8f+e2S9WclpUew5/Wwq"
	LogVerifierKey = "arq-tests+8663b165+AXoDpYkG6LyXeEggrbG0mk/b8tSlg54kHdSp9PySGy6+"
)

// AdminURL is the server the tests use: ARQ_TEST_DATABASE_URL, or the local
// default (postgres on 127.0.0.1:5432, trust authentication).
func AdminURL() string {
	if u := os.Getenv("ARQ_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// New creates a fresh migrated database for t, dropped when t ends, and
// returns its URL.
func New(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("testdb: Postgres is unreachable at %s (start it, or set ARQ_TEST_DATABASE_URL): %v", AdminURL(), err)
	}
	defer admin.Close(context.Background())

	tmpl, err := template(ctx, admin)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	name := "arq_t_" + strings.ToLower(ulid.Make().String())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+tmpl); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	dropWhenDone(t, name)
	// A copy has its template's tables and grants, not the grants on the
	// database itself, which migrations.Apply makes.
	if _, err := admin.Exec(ctx, "GRANT CREATE ON DATABASE "+name+" TO "+migrations.ServerRole); err != nil {
		t.Fatalf("testdb: grant: %v", err)
	}
	return URLFor(name)
}

// Unmade returns the URL of a database that does not exist yet, for tests
// of what makes one (arq migrate, import); it is dropped when t ends if
// something made it.
func Unmade(t testing.TB) string {
	t.Helper()
	name := "arq_u_" + strings.ToLower(ulid.Make().String())
	dropWhenDone(t, name)
	return URLFor(name)
}

// Migrated returns the URL of a database made and migrated as `arq
// migrate` makes one, dropped when t ends. Unlike New's copies of one
// template, each has a deployment identity of its own (migration 00021).
func Migrated(t testing.TB) string {
	t.Helper()
	url := Unmade(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrations.EnsureDatabase(ctx, url); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if err := migrations.Apply(ctx, url, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("testdb: migrate: %v", err)
	}
	if err := migrations.ApplyKeyStore(ctx, url, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return url
}

// dropWhenDone drops database name, if it exists, when t ends.
func dropWhenDone(t testing.TB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
}

// URLFor is the URL of database name on the test server.
func URLFor(name string) string {
	cfg, err := pgx.ParseConfig(AdminURL())
	if err != nil {
		panic(fmt.Sprintf("testdb: bad ARQ_TEST_DATABASE_URL: %v", err))
	}
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// Pool opens a pool on url as the server opens its own, closed when t
// ends: its connections run as migrations.ServerRole, so a test through
// it also shows that the server never needs to change the log.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	return pool(t, url, true)
}

// OwnerPool opens a pool on url as the database's owner (the URL's role),
// closed when t ends: for tests that tamper with the log, as an operator
// might (through arq_operator_change), or check the server's rights.
func OwnerPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	return pool(t, url, false)
}

func pool(t testing.TB, url string, asServer bool) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	cfg.MaxConns = 20
	pgcancel.OnServerPool(cfg) // as cmd/arq wires its pools
	if asServer {
		migrations.AsServer(cfg.ConnConfig)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// template returns the name of a migrated template database, making it the
// first time. Its name carries a hash of the migrations, so a changed schema
// gets a new template; an advisory lock keeps concurrent test binaries from
// building it twice.
func template(ctx context.Context, admin *pgx.Conn) (string, error) {
	h := sha256.New()
	for _, fsys := range []fs.FS{migrations.Files(), migrations.KeyStoreFiles()} {
		err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(fsys, path)
			h.Write([]byte(path))
			h.Write(b)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("hash migrations: %w", err)
		}
	}
	name := "arq_tmpl_" + hex.EncodeToString(h.Sum(nil))[:16]

	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(hashtext('arq testdb template'))`); err != nil {
		return "", fmt.Errorf("lock template: %w", err)
	}
	defer admin.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('arq testdb template'))`)

	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return "", fmt.Errorf("drop half-built template: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	quiet := slog.New(slog.DiscardHandler)
	if err := migrations.Apply(ctx, URLFor(building), quiet); err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if err := migrations.ApplyKeyStore(ctx, URLFor(building), quiet); err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", fmt.Errorf("publish template: %w", err)
	}
	// Templates of older schemas are of no further use.
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'arq\_tmpl\_%' AND datname <> $1 AND datname NOT LIKE '%\_building'`, name)
	if err == nil {
		old, _ := pgx.CollectRows(rows, pgx.RowTo[string])
		for _, o := range old {
			_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+o+" WITH (FORCE)")
		}
	}
	return name, nil
}

// AsOperator runs fn in a transaction on url as the database's owner,
// after arq_operator_change(reason): as an operator changes events in the
// log (migration 00027), for tests that tamper with it.
func AsOperator(t testing.TB, url, reason string, fn func(context.Context, pgx.Tx) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT arq_operator_change($1)`, reason); err != nil {
			return err
		}
		return fn(ctx, tx)
	})
	if err != nil {
		t.Fatalf("testdb: as operator: %v", err)
	}
}

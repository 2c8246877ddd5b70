// Package migrations holds ARQ's schema as plain SQL files, embedded in the
// binary and applied by goose with a version table (goose_db_version).
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", which goose needs
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// keyStoreFiles are the key store's migrations (see package vault),
// versioned apart from the log's, in vault_db_version: the key store may
// be a database of its own.
//
//go:embed keystore/*.sql
var keyStoreFiles embed.FS

// KeyStoreFiles are the key store's migrations, for tests that hash the
// schema.
func KeyStoreFiles() fs.FS {
	sub, _ := fs.Sub(keyStoreFiles, "keystore") // the directory is embedded
	return sub
}

// Apply brings the database at databaseURL to the newest schema version.
// It is safe to run from several processes at once: goose takes a Postgres
// advisory lock for the duration.
func Apply(ctx context.Context, databaseURL string, log *slog.Logger) error {
	return apply(ctx, databaseURL, files, "", log, grantDatabase)
}

// ApplyKeyStore brings the key store at databaseURL (the log's database,
// or one of its own) to its newest schema version, as Apply does the log's.
func ApplyKeyStore(ctx context.Context, databaseURL string, log *slog.Logger) error {
	return apply(ctx, databaseURL, KeyStoreFiles(), "vault_db_version", log, nil)
}

// apply runs the migrations in fsys, versioned in table (goose's own when
// empty), then after, if not nil: what a migration cannot keep in place.
func apply(ctx context.Context, databaseURL string, fsys fs.FS, table string, log *slog.Logger,
	after func(context.Context, *sql.DB, *slog.Logger) error) error {
	db, err := sql.Open("pgx", databaseURL)
	if err != nil {
		return fmt.Errorf("open database for migrations: %w", err)
	}
	defer db.Close()

	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("create migration lock: %w", err)
	}
	opts := []goose.ProviderOption{goose.WithSessionLocker(locker)}
	dialect := goose.DialectPostgres
	if table != "" {
		store, err := database.NewStore(database.DialectPostgres, table)
		if err != nil {
			return fmt.Errorf("migration table: %w", err)
		}
		opts, dialect = append(opts, goose.WithStore(store)), ""
	}
	provider, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	if after != nil {
		return after(ctx, db, log)
	}
	return nil
}

// EnsureDatabase creates the database named in databaseURL if it does not
// exist, connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, databaseURL string) error {
	cfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	name := cfg.Database
	if name == "" {
		return errors.New("database url names no database")
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to %s:%d to create database %q: %w", cfg.Host, cfg.Port, name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// Another process won the race: duplicate_database once its database
	// is there, unique_violation on pg_database while both create it.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Files returns the embedded migration files.
func Files() fs.FS { return files }

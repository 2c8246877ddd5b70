package app_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/migrations"
)

// openApp opens the app over the database at url as a server does,
// without serving, as if its database were named arq: deployments on
// different Postgres clusters whose databases have the same name (the
// default, arq) share one Redis, and one cluster cannot hold two databases
// of one name, so the test gives two the same name where the app takes it
// (Options.DatabaseName), which is all the name does there.
func openApp(t *testing.T, url string) *app.App {
	t.Helper()
	cfg, err := app.FromEnv(func(k string) string {
		switch k {
		case "ARQ_DATABASE_URL":
			return url
		case "ARQ_DB_MAX_CONNS":
			return "2"
		case "ARQ_MASTER_KEY":
			return testdb.MasterKey
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), app.Options{Parts: app.PartServer, DatabaseName: "arq"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

// Every process on one database, and every restart, has one namespace, so
// they share caches and the live topic; another database named alike has
// another, and the topic and cache keys carry it.
func TestDeploymentNamespace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	one, other := testdb.Migrated(t), testdb.Migrated(t)
	first, second, elsewhere := openApp(t, one), openApp(t, one), openApp(t, other)
	if first.Namespace() != second.Namespace() {
		t.Fatalf("two processes on one database: namespaces %q and %q", first.Namespace(), second.Namespace())
	}
	if first.Namespace() == elsewhere.Namespace() {
		t.Fatalf("two databases named arq share the namespace %q", first.Namespace())
	}
	if !strings.HasPrefix(first.Namespace(), "arq:") {
		t.Errorf("namespace %q does not name the database", first.Namespace())
	}
	if topic := app.LiveTopic(first.Namespace()); topic != "arq:"+first.Namespace()+":events" {
		t.Errorf("live topic %q", topic)
	}

	// Migrating again, as every `arq serve` does, and restarting keep it.
	if err := migrations.Apply(ctx, one, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	again := openApp(t, one)
	if again.Namespace() != second.Namespace() {
		t.Fatalf("after a restart: namespace %q, was %q", again.Namespace(), second.Namespace())
	}
}

package migrations_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/migrations"
)

// logRows appends one row to each table of the log, as the server does,
// and returns the statements that would change or remove them.
func logRows(t *testing.T, ctx context.Context, server *pgxpool.Pool) []string {
	t.Helper()
	for _, q := range []string{
		`INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
			VALUES ('e1', 's', 'test', 1, 'x', '{}', '{}', '\x01')`,
		`INSERT INTO log_tree (first_leaf, leaves, first_hash, hashes, first_xid, first_position, last_xid, last_position, positions)
			VALUES (0, 1, 0, '\x00', '1', 1, '1', 1, '{1}')`,
		`INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES (1, '\x00', 'n', now())`,
	} {
		if _, err := server.Exec(ctx, q); err != nil {
			t.Fatalf("as the server, %s: %v", q, err)
		}
	}
	return []string{
		`UPDATE events SET data = '{"forged":true}'`, `DELETE FROM events`, `TRUNCATE events`,
		`UPDATE log_tree SET hashes = '\x01'`, `DELETE FROM log_tree`, `TRUNCATE log_tree`,
		`UPDATE log_checkpoints SET note = 'forged'`, `DELETE FROM log_checkpoints`, `TRUNCATE log_checkpoints`,
	}
}

// logState is what the log's tables hold, to compare before and after.
func logState(t *testing.T, ctx context.Context, pool *pgxpool.Pool) string {
	t.Helper()
	var s string
	err := pool.QueryRow(ctx, `SELECT (SELECT string_agg(event_id || data::text, ',') FROM events)
		|| (SELECT string_agg(encode(hashes, 'hex'), ',') FROM log_tree)
		|| (SELECT string_agg(note, ',') FROM log_checkpoints)`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pgCode(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// The server's role reads and appends to the log but may not change,
// remove or empty it, nor turn its triggers off, nor act as an operator.
func TestServerOnlyAppendsToTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	server := testdb.Pool(t, url)
	var role string
	if err := server.QueryRow(ctx, `SELECT current_user`).Scan(&role); err != nil || role != migrations.ServerRole {
		t.Fatalf("the server's pool runs as %q (%v), want %s", role, err, migrations.ServerRole)
	}
	refused := append(logRows(t, ctx, server),
		`ALTER TABLE events DISABLE TRIGGER ALL`,
		`SELECT arq_operator_change('because')`,
		`INSERT INTO log_operator_changes (reason, operation, event_id, stream_id, version, position, old_hash)
			VALUES ('r', 'DELETE', 'e1', 's', 1, 1, '\x01')`)
	before := logState(t, ctx, server)
	for _, q := range refused {
		_, err := server.Exec(ctx, q)
		if pgCode(err) != "42501" && pgCode(err) != "42704" {
			t.Errorf("as the server, %s: %v, want permission denied", q, err)
		}
	}
	if after := logState(t, ctx, server); after != before {
		t.Fatalf("the log changed: %s, was %s", after, before)
	}
}

// The owner is refused too, by the log's triggers, with an error that
// says why.
func TestOwnerMayNotChangeTheLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	owner := testdb.OwnerPool(t, url)
	refused := logRows(t, ctx, testdb.Pool(t, url))
	refused = append(refused, `UPDATE log_operator_changes SET reason = 'x'`, `TRUNCATE log_operator_changes`)
	before := logState(t, ctx, owner)
	for _, q := range refused {
		_, err := owner.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "AQ004" || !strings.HasSuffix(pgErr.Message, " is append-only: "+strings.Fields(q)[0]+" refused") ||
			!strings.Contains(q, strings.Fields(pgErr.Message)[0]) {
			t.Errorf("as the owner, %s: %v, want the table is append-only", q, err)
		}
	}
	// A setting made by hand, outside the transaction, lets nothing by.
	c, err := owner.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	if _, err := c.Exec(ctx, `SELECT set_config('arq.operator_reason', 'x', false), set_config('arq.operator_xid', pg_current_xact_id()::text, false)`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `DELETE FROM events`); pgCode(err) != "AQ004" {
		t.Errorf("as the owner, with a stale setting: %v, want refused", err)
	}
	if after := logState(t, ctx, owner); after != before {
		t.Fatalf("the log changed: %s, was %s", after, before)
	}
}

// An operator changes and removes events in a transaction that says why
// first, and each event so changed is recorded; the next transaction is
// refused again.
func TestOperatorChangeIsRecorded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.New(t)
	server := testdb.Pool(t, url)
	logRows(t, ctx, server)
	if _, err := server.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, data, metadata, hash)
		VALUES ('e2', 's', 'test', 2, 'x', '{}', '{}', '\x02')`); err != nil {
		t.Fatal(err)
	}
	testdb.AsOperator(t, url, "ticket 7: a bad import", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE events SET hash = '\x03' WHERE event_id = 'e1'`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM events WHERE event_id = 'e2'`)
		return err
	})
	type change struct {
		By, Reason, Op, Event, Stream string
		Version                       int
		Old, New                      []byte
	}
	rows, err := server.Query(ctx, `SELECT changed_by, reason, operation, event_id, stream_id, version, old_hash, new_hash
		FROM log_operator_changes ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[change])
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := pgx.ParseConfig(url)
	want := []change{
		{cfg.User, "ticket 7: a bad import", "UPDATE", "e1", "s", 1, []byte{1}, []byte{3}},
		{cfg.User, "ticket 7: a bad import", "DELETE", "e2", "s", 2, []byte{2}, nil},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recorded %+v, want %+v", got, want)
	}
	if _, err := testdb.OwnerPool(t, url).Exec(ctx, `DELETE FROM events`); pgCode(err) != "AQ004" {
		t.Fatalf("after the operator's transaction: %v, want refused", err)
	}
	// The server may not say why: only the owner may.
	if _, err := server.Exec(ctx, `SELECT arq_operator_change('x')`); pgCode(err) != "42501" {
		t.Fatalf("the server as an operator: %v, want permission denied", err)
	}
}

// Every table but the log's is the server's own (rebuilds replace
// projection tables); the log's tables it may only read and append to.
// A later migration that adds a table fails here until it says which.
func TestServerRights(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testdb.Migrated(t) // as arq migrate makes it, database grant included
	owner := testdb.OwnerPool(t, url)
	rows, err := owner.Query(ctx, `SELECT tablename, tableowner,
			has_table_privilege($1, quote_ident(tablename), 'SELECT'),
			has_table_privilege($1, quote_ident(tablename), 'INSERT'),
			has_table_privilege($1, quote_ident(tablename), 'UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES')
		FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1`, migrations.ServerRole)
	if err != nil {
		t.Fatal(err)
	}
	readOnly := []string{"goose_db_version", "vault_db_version", "log_operator_changes"}
	n := 0
	for rows.Next() {
		var table, by string
		var sel, ins, more bool
		if err := rows.Scan(&table, &by, &sel, &ins, &more); err != nil {
			t.Fatal(err)
		}
		n++
		switch {
		case slices.Contains(migrations.LogTables, table):
			if by == migrations.ServerRole || !sel || !ins || more {
				t.Errorf("log table %s: owner %s, select %v, insert %v, more %v; want select and insert alone", table, by, sel, ins, more)
			}
		case slices.Contains(readOnly, table):
			if by == migrations.ServerRole || !sel || ins || more {
				t.Errorf("table %s: owner %s, select %v, insert %v, more %v; want select alone", table, by, sel, ins, more)
			}
		case by != migrations.ServerRole:
			t.Errorf("table %s is %s's, not the server's (ALTER TABLE %s OWNER TO %s)", table, by, table, migrations.ServerRole)
		}
	}
	if err := rows.Err(); err != nil || n < 20 {
		t.Fatalf("%d tables, %v", n, err)
	}
	var create bool
	if err := owner.QueryRow(ctx, `SELECT has_database_privilege($1, current_database(), 'CREATE')`, migrations.ServerRole).Scan(&create); err != nil || !create {
		t.Fatalf("the server may make schemas: %v, %v", create, err)
	}
}

// Databases migrated at once on one cluster make the one role between
// them: the role statement of migration 00027, run for a role of this
// test's own, in several transactions started together.
func TestServerRoleRacing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := fs.ReadFile(migrations.Files(), "00027_append_only.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "DO $$")
	end := strings.Index(text[start:], "$$;") + start + len("$$")
	role := fmt.Sprintf("arq_race_%d", time.Now().UnixNano())
	stmt := strings.ReplaceAll(text[start:end], "arq_server", role)
	if !strings.Contains(stmt, "CREATE ROLE "+role) {
		t.Fatalf("no role statement in %q", stmt)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(ctx, testdb.AdminURL()); err == nil {
			_, _ = c.Exec(ctx, "DROP ROLE IF EXISTS "+role)
			_ = c.Close(ctx)
		}
	})
	conns := make([]*pgx.Conn, 6)
	for i := range conns {
		c, err := pgx.Connect(ctx, testdb.AdminURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		conns[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, stmt)
				return err
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

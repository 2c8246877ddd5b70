package migrations

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
)

// ServerRole is the role the server and every other command run as
// (migration 00027_append_only.sql makes it): it may read and append to
// the log's tables, never change or remove a row of them, and owns every
// other table. Migrations run as the database's owner, which is a member.
const ServerRole = "arq_server"

// LogTables are the tables the server may only read and append to.
var LogTables = []string{"events", "log_tree", "log_checkpoints"}

// AsServer makes the connections of cc run as ServerRole, whatever role
// the URL logs in as: a superuser and the database's owner, who may act as
// it, as well as a login role made a member of it alone. The role is set
// when the connection starts, so every connection copied from cc runs so
// too (a pool's, a LISTEN's), and RESET ROLE comes back to it. Objects a
// connection makes (the tables of a rebuild) are then the role's, which
// later migrations, as a member, may alter.
func AsServer(cc *pgx.ConnConfig) {
	if cc.RuntimeParams == nil {
		cc.RuntimeParams = map[string]string{}
	}
	cc.RuntimeParams["role"] = ServerRole
}

// grantDatabase grants ServerRole the right to make schemas in the
// database (a rebuild's copy is built in one): a grant on the database,
// which a copy of it (CREATE DATABASE ... TEMPLATE, a restore) lacks, so
// every Apply checks it. A login that may not grant it only warns: the
// server then serves, and rebuilds fail until the owner migrates.
func grantDatabase(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	var has bool
	err := db.QueryRowContext(ctx, `SELECT has_database_privilege($1, current_database(), 'CREATE')`, ServerRole).Scan(&has)
	if err != nil {
		return fmt.Errorf("check the rights of %s: %w", ServerRole, err)
	}
	if has {
		return nil
	}
	var name string
	if err := db.QueryRowContext(ctx, `SELECT current_database()`).Scan(&name); err != nil {
		return fmt.Errorf("read database name: %w", err)
	}
	q := "GRANT CREATE ON DATABASE " + pgx.Identifier{name}.Sanitize() + " TO " + ServerRole
	if _, err := db.ExecContext(ctx, q); err != nil {
		log.Warn("the server's role may not make schemas, so online rebuilds fail: migrate as the database's owner",
			"role", ServerRole, "err", err)
	}
	return nil
}

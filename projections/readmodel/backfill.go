package readmodel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
)

// MissingEmbeddings lists the live memories and messages without an
// embedding, for the embeddings backfill (commands.Backfiller's port).
type MissingEmbeddings struct{ db querier }

// MissingEmbeddings returns the lister over r's database.
func (r *Reader) MissingEmbeddings() MissingEmbeddings { return MissingEmbeddings{db: r.db} }

// unembedded is, by kind, the table of its texts and the condition of one
// that needs an embedding: live (a memory not expired; deleted ones and
// redacted messages are gone from the tables), without one, and not empty.
var unembedded = map[string]struct{ table, missing string }{
	domain.StreamMemory:  {"memories", `embedding IS NULL AND content <> '' AND (expires_at IS NULL OR expires_at > now())`},
	domain.StreamMessage: {"messages", `embedding IS NULL AND content <> ''`},
}

func unembeddedOf(kind string) (table, missing string, err error) {
	k, ok := unembedded[kind]
	if !ok {
		return "", "", fmt.Errorf("no texts of kind %q have embeddings", kind)
	}
	return k.table, k.missing, nil
}

// Count says how many texts of kind have no embedding.
func (m MissingEmbeddings) Count(ctx context.Context, kind string) (int64, error) {
	table, missing, err := unembeddedOf(kind)
	if err != nil {
		return 0, err
	}
	var n int64
	if err := m.db.QueryRow(ctx, `SELECT count(*) FROM `+table+` WHERE `+missing).Scan(&n); err != nil {
		return 0, fmt.Errorf("count %s without an embedding: %w", table, err)
	}
	return n, nil
}

// Page returns up to limit texts of kind without an embedding whose ids
// come after after, in id order, each at the version it has now.
func (m MissingEmbeddings) Page(ctx context.Context, kind, after string, limit int) ([]domain.TextToEmbed, error) {
	table, missing, err := unembeddedOf(kind)
	if err != nil {
		return nil, err
	}
	rows, err := m.db.Query(ctx, `SELECT id, version, content FROM `+table+`
		WHERE `+missing+` AND id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read %s without an embedding: %w", table, err)
	}
	page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.TextToEmbed, error) {
		var t domain.TextToEmbed
		return t, r.Scan(&t.ID, &t.Version, &t.Content)
	})
	if err != nil {
		return nil, fmt.Errorf("read %s without an embedding: %w", table, err)
	}
	return page, nil
}

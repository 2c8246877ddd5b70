package readmodel

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
)

// StampOf reads the stamp the entity's row has now, as Encoded would give
// it, with a primary-key lookup that returns no row data. A row changes
// only by its entity's events (each moves its version), by messages
// appended to a session (its message count) and by time (a session's
// status; a memory's expiry, which makes it unreadable), and the stamp
// names each of these, so equal stamps mean equal answers. A rebuild
// rewrites rows without moving versions (and may change them: it exists
// to fix rows), so the stamp ends in "@" and the row's xmin, which every
// rewrite changes. The conditions are those of the full reads: an entity
// a read would not find is domain.ErrNotFound.
//
// Stamp reads that arrive together share one round trip, sent after each
// of them arrived (see batch.Loader): a stamp is never older than a write
// its reader follows.
func (r *Reader) StampOf(ctx context.Context, kind domain.Kind, tenant, id string) (string, error) {
	if _, ok := stampSQL[kind]; !ok {
		return "", fmt.Errorf("read %s: no such kind of entity", kind)
	}
	if kind != domain.KindUser {
		tenant = "" // only users are looked up by tenant
	}
	if !Storable(tenant) {
		return "", notFound(pgx.ErrNoRows, kind.String(), id)
	}
	return loadOne(ctx, r.stamps, entityKey{kind, tenant, id}, kind.String(), id)
}

// entityKey names one entity in a batch of stamp reads.
type entityKey struct {
	kind       domain.Kind
	tenant, id string
}

// stampSQL reads, per kind, the id, tenant, version, extra and xmin of the
// rows named by the condition that follows it.
var stampSQL = map[domain.Kind]string{
	domain.KindUser:    `SELECT id, tenant, version, '', xmin::text FROM users WHERE `,
	domain.KindSession: `SELECT id, '', version, ` + sessionMessageCount + ` || '.' || ` + sessionStatus + `, xmin::text FROM sessions WHERE `,
	domain.KindMessage: `SELECT id, '', version, '', xmin::text FROM messages WHERE `,
	domain.KindMemory:  `SELECT id, '', version, '', xmin::text FROM memories WHERE ` + live + ` AND `,
}

// readStamps reads the stamps of keys, one statement per kind, all in one
// round trip.
func (r *Reader) readStamps(ctx context.Context, keys []entityKey) (map[entityKey]string, error) {
	type group struct{ ids, tenants []string }
	groups := map[domain.Kind]*group{}
	for _, k := range keys {
		g := groups[k.kind]
		if g == nil {
			g = &group{}
			groups[k.kind] = g
		}
		g.ids, g.tenants = append(g.ids, k.id), append(g.tenants, k.tenant)
	}
	out := make(map[entityKey]string, len(keys))
	var b pgx.Batch
	for kind, g := range groups {
		var (
			cond string
			args []any
		)
		switch {
		case len(g.ids) == 1 && kind == domain.KindUser:
			cond, args = `id = $1 AND tenant = $2`, []any{g.ids[0], g.tenants[0]}
		case kind == domain.KindUser:
			cond, args = `(id, tenant) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, []any{g.ids, g.tenants}
		default:
			c, arg := keyCond("id", g.ids)
			cond, args = c, []any{arg}
		}
		collect := func(rows pgx.Rows) error {
			var (
				version                 int
				id, tenant, extra, xmin string
			)
			_, err := pgx.ForEachRow(rows, []any{&id, &tenant, &version, &extra, &xmin}, func() error {
				out[entityKey{kind, tenant, id}] = stamp(version, extra) + "@" + xmin
				return nil
			})
			return err
		}
		if len(groups) == 1 { // one statement: no batch around it
			rows, err := r.db.Query(ctx, stampSQL[kind]+cond, args...)
			if err != nil {
				return nil, err
			}
			return out, collect(rows)
		}
		b.Queue(stampSQL[kind]+cond, args...).Query(collect)
	}
	if err := r.db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

package vault

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Rotate rewraps with the current master key every data key wrapped by a
// previous one, a thousand at a time, and says how many it rewrapped.
// Events are untouched: they are sealed by the data keys, which stay the
// same. Servers configured with the new key as current and the old one as
// previous serve throughout; once Rotate returns, the old key may go.
func (v *Vault) Rotate(ctx context.Context, progress func(done int64)) (int64, error) {
	current := v.keys.current.id
	var done int64
	after := ""
	for {
		// In key order from where the last thousand ended: one pass over
		// the store, whatever share of it is rewrapped already.
		rows, err := v.pool.Query(ctx, `SELECT id, master, wrapped FROM vault_keys
			WHERE id > $2 AND master <> $1 ORDER BY id LIMIT 1000`, current, after)
		if err != nil {
			return done, fmt.Errorf("rotate: %w", err)
		}
		type old struct {
			id, master string
			wrapped    []byte
		}
		olds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (old, error) {
			var o old
			return o, r.Scan(&o.id, &o.master, &o.wrapped)
		})
		if err != nil {
			return done, fmt.Errorf("rotate: %w", err)
		}
		if len(olds) == 0 {
			return done, nil
		}
		b := &pgx.Batch{}
		for _, o := range olds {
			key, err := v.keys.unwrap(o.id, o.master, o.wrapped)
			if err != nil {
				return done, fmt.Errorf("rotate: %w", err)
			}
			master, wrapped := v.keys.wrap(o.id, key)
			// Only if no one changed it meanwhile (an erasure deletes it).
			b.Queue(`UPDATE vault_keys SET master = $2, wrapped = $3 WHERE id = $1 AND master = $4`, o.id, master, wrapped, o.master)
		}
		if err := v.pool.SendBatch(ctx, b).Close(); err != nil {
			return done, fmt.Errorf("rotate: %w", err)
		}
		done += int64(len(olds))
		after = olds[len(olds)-1].id
		if progress != nil {
			progress(done)
		}
	}
}

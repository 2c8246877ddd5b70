package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/arq-memory/arq/logproof"
)

// ErrNoCheckpoint is returned when no checkpoint of the asked size (or
// none at all) was signed.
var ErrNoCheckpoint = errors.New("no such checkpoint")

// Signed is a checkpoint and the signed note that carries it.
type Signed struct {
	logproof.Checkpoint
	Note string
}

// Origin is the name checkpoints give the log of a database: its
// deployment id (migrations/00021_deployment.sql), which is its own.
func Origin(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, error) {
	var id string
	if err := q.QueryRow(ctx, `SELECT id::text FROM deployment`).Scan(&id); err != nil {
		return "", fmt.Errorf("the log's origin: %w", err)
	}
	return "arq/" + id, nil
}

// sign signs a checkpoint of the tree at its current size and keeps it:
// in log_checkpoints, and in dir when not "".
func (t *Tree) sign(ctx context.Context, signer note.Signer, origin, dir string, now time.Time) (Signed, error) {
	if t.edge == nil || t.edge.size == 0 {
		return Signed{}, fmt.Errorf("checkpoint: %w: the tree holds no event yet", ErrNotInTree)
	}
	root, err := tlog.TreeHash(t.edge.size, t.edge)
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint: %w", err)
	}
	c := logproof.Checkpoint{Origin: origin, Size: t.edge.size, Root: root, Time: now.UTC().Truncate(time.Second)}
	msg, err := note.Sign(&note.Note{Text: c.Text()}, signer)
	if err != nil {
		return Signed{}, fmt.Errorf("checkpoint: sign: %w", err)
	}
	s := Signed{Checkpoint: c, Note: string(msg)}
	if _, err := t.pool.Exec(ctx, `INSERT INTO log_checkpoints (size, root, note, signed_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (size) DO NOTHING`, c.Size, root[:], s.Note, c.Time); err != nil {
		return Signed{}, fmt.Errorf("checkpoint: %w", err)
	}
	if dir != "" {
		if err := writeCheckpoint(dir, s); err != nil {
			return s, err
		}
	}
	return s, nil
}

// SignNow signs a checkpoint of the tree as built so far (by Build or
// Keep in this process), for tools and tests; Keep signs them as the log
// grows.
func (t *Tree) SignNow(ctx context.Context, signer note.Signer, origin, dir string) (Signed, error) {
	return t.sign(ctx, signer, origin, dir, time.Now())
}

// writeCheckpoint writes s to dir as <size>.checkpoint and as
// latest.checkpoint, each whole or not at all.
func writeCheckpoint(dir string, s Signed) error {
	for _, name := range []string{strconv.FormatInt(s.Size, 10) + ".checkpoint", "latest.checkpoint"} {
		tmp, err := os.CreateTemp(dir, ".checkpoint-*")
		if err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		_, err = tmp.WriteString(s.Note)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, name))
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write checkpoint %s: %w", name, err)
		}
	}
	return nil
}

// Checkpoint returns the signed checkpoint of size leaves, or the latest
// when size is 0.
func (t *Tree) Checkpoint(ctx context.Context, size int64) (Signed, error) {
	var s Signed
	q := `SELECT note FROM log_checkpoints WHERE size = $1`
	if size == 0 {
		q = `SELECT note FROM log_checkpoints WHERE $1 = 0 ORDER BY size DESC LIMIT 1`
	}
	err := t.pool.QueryRow(ctx, q, size).Scan(&s.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, ErrNoCheckpoint
	}
	if err != nil {
		return s, fmt.Errorf("checkpoint: %w", err)
	}
	if s.Checkpoint, err = logproof.ReadCheckpoint([]byte(s.Note)); err != nil {
		return s, fmt.Errorf("checkpoint %d: %w", size, err)
	}
	return s, nil
}

// Checkpoints lists the checkpoints signed after the size after, oldest
// first, at most limit.
func (t *Tree) Checkpoints(ctx context.Context, after int64, limit int) ([]Signed, error) {
	rows, err := t.pool.Query(ctx, `SELECT note FROM log_checkpoints WHERE size > $1 ORDER BY size LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	out := make([]Signed, 0, len(notes))
	for _, text := range notes {
		c, err := logproof.ReadCheckpoint([]byte(text))
		if err != nil {
			return nil, err
		}
		out = append(out, Signed{Checkpoint: c, Note: text})
	}
	return out, nil
}

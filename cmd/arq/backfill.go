package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// backfillActor is the actor the backfill's events record.
const backfillActor = "arq embeddings backfill"

// embeddingsBackfill gives every live memory and message without an
// embedding one from the configured provider: what a deployment needs
// after it turns a provider on, since only new and edited texts get one by
// themselves. Each embedding is an ordinary update event (actor "arq
// embeddings backfill", one request id per run), appended at the version
// the text was read at: a text changed meanwhile is skipped, its change
// got an embedding of its own.
func (c *cli) embeddingsBackfill(ctx context.Context, args []string) error {
	batch := 64
	var quiet bool
	if _, err := c.parse("embeddings backfill", args, func(fs *flag.FlagSet) {
		fs.IntVar(&batch, "batch", batch, "texts per request to the provider")
		fs.BoolVar(&quiet, "quiet", false, "print no progress")
	}, 0); err != nil {
		return err
	}
	if c.cfg.EmbeddingsURL == "" {
		return usagef("embeddings backfill needs a provider: set ARQ_EMBEDDINGS_URL (and ARQ_EMBEDDING_DIM)")
	}
	if batch < 1 || batch > 100 {
		// The provider's answer is read up to 100 texts' worth (see
		// embeddings.OpenAI).
		return usagef("--batch must be 1 to 100, not %d", batch)
	}
	a, err := c.open(ctx, app.PartCommands)
	if err != nil {
		return err
	}
	defer a.Close()
	meta := commands.Meta{RequestID: ulid.Make().String(), Actor: backfillActor, Tenant: "default"}
	for _, k := range []backfillKind{memoryBackfill(a, meta), messageBackfill(a, meta)} {
		var total int64
		if err := a.Pool().QueryRow(ctx, `SELECT count(*) FROM `+k.table+` WHERE `+k.missing).Scan(&total); err != nil {
			return fmt.Errorf("count %s without an embedding: %w", k.table, err)
		}
		prog := newProgress(c.stderr, "embed "+k.table, total, quiet)
		prog.unit = k.table
		done, skipped, err := backfill(ctx, a, k, batch, prog.update)
		if err != nil {
			prog.fail()
			return err
		}
		prog.finish()
		fmt.Fprintf(c.stdout, "%s: %d embedded, %d skipped (changed or gone meanwhile)\n", k.table, done, skipped)
	}
	return nil
}

// backfillKind is one table to backfill and the command that sets an
// embedding on one of its rows at a version.
type backfillKind struct {
	table, missing string
	set            func(ctx context.Context, id string, version int, e []float64) error
}

func memoryBackfill(a *app.App, meta commands.Meta) backfillKind {
	return backfillKind{
		table:   "memories",
		missing: `embedding IS NULL AND content <> '' AND (expires_at IS NULL OR expires_at > now())`,
		set: func(ctx context.Context, id string, version int, e []float64) error {
			_, err := a.Commands().UpdateMemory(ctx, meta, id, []int{version}, domain.UpdateMemory{Embedding: e})
			return err
		},
	}
}

func messageBackfill(a *app.App, meta commands.Meta) backfillKind {
	return backfillKind{
		table:   "messages",
		missing: `embedding IS NULL AND content <> ''`,
		set: func(ctx context.Context, id string, version int, e []float64) error {
			_, err := a.Commands().EditMessage(ctx, meta, id, []int{version}, domain.EditMessage{Embedding: e})
			return err
		},
	}
}

// backfill pages through k's rows without an embedding in id order, asks
// the provider for a page's embeddings at once and sets them one by one.
func backfill(ctx context.Context, a *app.App, k backfillKind, batch int, progress func(int64)) (done, skipped int64, err error) {
	after := ""
	for {
		rows, err := a.Pool().Query(ctx, `SELECT id, version, content FROM `+k.table+`
			WHERE `+k.missing+` AND id > $1 ORDER BY id LIMIT $2`, after, batch)
		if err != nil {
			return done, skipped, fmt.Errorf("read %s without an embedding: %w", k.table, err)
		}
		type row struct {
			id, content string
			version     int
		}
		page, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			return x, r.Scan(&x.id, &x.version, &x.content)
		})
		if err != nil {
			return done, skipped, fmt.Errorf("read %s without an embedding: %w", k.table, err)
		}
		if len(page) == 0 {
			return done, skipped, nil
		}
		texts := make([]string, len(page))
		for i, r := range page {
			texts[i] = r.content
		}
		vectors, err := a.Commands().Embed(ctx, texts)
		if err != nil {
			return done, skipped, fmt.Errorf("embed %s: %w", k.table, err)
		}
		for i, r := range page {
			err := k.set(ctx, r.id, r.version, domain.Float64s(vectors[i]))
			switch {
			case errors.Is(err, domain.ErrStale), errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrConflict):
				skipped++
			case err != nil:
				return done, skipped, fmt.Errorf("set the embedding of %s %s: %w", k.table, r.id, err)
			default:
				done++
			}
			progress(done + skipped)
		}
		after = page[len(page)-1].id
	}
}

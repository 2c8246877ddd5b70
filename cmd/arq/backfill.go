package main

import (
	"context"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/app"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
)

// embeddingsBackfill runs commands.Backfiller over memories, then
// messages: every live text without an embedding gets one from the
// configured provider, as an ordinary update event (actor
// commands.BackfillActor, one request id per run). It checks the options
// and reports progress; the use case is the Backfiller's.
func (c *cli) embeddingsBackfill(ctx context.Context, o embeddingsBackfillCmd) error {
	batch, quiet := o.Batch, o.Quiet
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
	b := a.Backfiller()
	meta := commands.Meta{RequestID: ulid.Make().String(), Actor: commands.BackfillActor}
	for _, k := range []struct{ kind, plural string }{{domain.StreamMemory, "memories"}, {domain.StreamMessage, "messages"}} {
		total, err := b.Missing(ctx, k.kind)
		if err != nil {
			return err
		}
		prog := newProgress(c.stderr, "embed "+k.plural, total, quiet)
		prog.unit = k.plural
		done, skipped, err := b.Backfill(ctx, meta, k.kind, batch, prog.update)
		if err != nil {
			prog.fail()
			return err
		}
		prog.finish()
		fmt.Fprintf(c.stdout, "%s: %d embedded, %d skipped (changed or gone meanwhile)\n", k.plural, done, skipped)
	}
	return nil
}

package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/arq-memory/arq/domain"
)

// BackfillActor is the actor the embeddings backfill's events record, so
// that a text's history says where its embedding came from.
const BackfillActor = "arq embeddings backfill"

// MissingEmbeddings lists the live texts without an embedding, as the read
// model has them. kind is domain.StreamMemory or domain.StreamMessage; a
// memory counts only while it has not expired, and an empty text never
// (there is nothing to embed).
type MissingEmbeddings interface {
	// Count says how many texts of kind have no embedding.
	Count(ctx context.Context, kind string) (int64, error)
	// Page returns up to limit texts of kind without an embedding whose
	// ids come after after, in id order.
	Page(ctx context.Context, kind, after string, limit int) ([]domain.TextToEmbed, error)
}

// Backfiller gives live memories and messages without an embedding one
// from the provider: what a deployment needs after it turns a provider on,
// since only new and edited texts get one by themselves.
type Backfiller struct {
	svc     *Service
	missing MissingEmbeddings
}

// NewBackfiller returns a Backfiller that finds texts in missing and sets
// their embeddings with svc's commands and provider.
func NewBackfiller(svc *Service, missing MissingEmbeddings) *Backfiller {
	return &Backfiller{svc: svc, missing: missing}
}

// Missing says how many texts of kind have no embedding now: how much a
// Backfill will do, unless they change meanwhile.
func (b *Backfiller) Missing(ctx context.Context, kind string) (int64, error) {
	n, err := b.missing.Count(ctx, kind)
	if err != nil {
		return 0, fmt.Errorf("count %s texts without an embedding: %w", kind, err)
	}
	return n, nil
}

// Backfill embeds the texts of kind (domain.StreamMemory or
// domain.StreamMessage) that have none, batch texts to a request to the
// provider, and sets each embedding with an ordinary update of its text
// (meta's trace; Actor BackfillActor and one request id a run) at the
// version it was read at. A text changed, deleted or expired meanwhile is
// skipped: a change got an embedding of its own. progress, if set, hears
// how many texts were done or skipped so far after each one.
func (b *Backfiller) Backfill(ctx context.Context, meta Meta, kind string, batch int, progress func(done int64)) (done, skipped int64, err error) {
	set, err := b.setter(kind)
	if err != nil {
		return 0, 0, err
	}
	if b.svc.embed.Provider == nil {
		return 0, 0, errors.New("embeddings backfill: no embedding provider is configured")
	}
	if batch < 1 {
		return 0, 0, fmt.Errorf("embeddings backfill: a batch of %d texts", batch)
	}
	after := ""
	for {
		page, err := b.missing.Page(ctx, kind, after, batch)
		if err != nil {
			return done, skipped, fmt.Errorf("read %s texts without an embedding: %w", kind, err)
		}
		if len(page) == 0 {
			return done, skipped, nil
		}
		texts := make([]string, len(page))
		for i, t := range page {
			texts[i] = t.Content
		}
		vectors, err := b.svc.Embed(ctx, texts)
		if err != nil {
			return done, skipped, fmt.Errorf("embed %s texts: %w", kind, err)
		}
		for i, t := range page {
			err := set(ctx, meta, t.ID, t.Version, domain.Float64s(vectors[i]))
			switch {
			case errors.Is(err, domain.ErrStale), errors.Is(err, domain.ErrNotFound), errors.Is(err, domain.ErrConflict):
				skipped++
			case err != nil:
				return done, skipped, fmt.Errorf("set the embedding of %s %s: %w", kind, t.ID, err)
			default:
				done++
			}
			if progress != nil {
				progress(done + skipped)
			}
		}
		after = page[len(page)-1].ID
	}
}

// setter is the command that sets an embedding on a text of kind at a
// version.
func (b *Backfiller) setter(kind string) (func(ctx context.Context, meta Meta, id string, version int, e []float64) error, error) {
	switch kind {
	case domain.StreamMemory:
		return func(ctx context.Context, meta Meta, id string, version int, e []float64) error {
			_, err := b.svc.UpdateMemory(ctx, meta, id, []int{version}, domain.UpdateMemory{Embedding: e})
			return err
		}, nil
	case domain.StreamMessage:
		return func(ctx context.Context, meta Meta, id string, version int, e []float64) error {
			_, err := b.svc.EditMessage(ctx, meta, id, []int{version}, domain.EditMessage{Embedding: e})
			return err
		}, nil
	}
	return nil, fmt.Errorf("embeddings backfill: no texts of kind %q have embeddings", kind)
}

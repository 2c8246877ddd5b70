package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/extract"
	"github.com/arq-memory/arq/projections/readmodel"
)

// ErrExtractionOff is the error of a run by hand when no extractor is
// configured.
var ErrExtractionOff = errors.New("extraction is off: set ARQ_EXTRACTOR=chat and ARQ_EXTRACTOR_URL (an OpenAI-compatible endpoint)")

// maxExtractedMessages bounds the messages one background run reads;
// the rest wait for the next run.
const maxExtractedMessages = 50

// openExtraction builds the extraction pass when ARQ_EXTRACTOR names an
// extractor: the run (for the background worker and runs by hand) and,
// in a server, the worker.
func (a *App) openExtraction() {
	ex := a.extractor()
	if ex == nil {
		return
	}
	a.extraction = commands.NewExtraction(a.commands, ex, memoryLookup{a.reader, a.settle})
	rules := readmodel.ExtractionRules{Batch: a.cfg.ExtractBatch, Idle: a.cfg.ExtractIdle, Lookback: a.cfg.ExtractLookback,
		MaxMessages: maxExtractedMessages}
	a.extractions = commands.NewExtractionWorker(a.extraction, extractionSource{a.reader, rules}, a.cfg.BackgroundInterval, a.cfg.ExtractTimeout, a.log)
}

// runExtractions runs the background extraction worker, when there is
// one, until ctx ends.
func (a *App) runExtractions(ctx context.Context) error {
	if a.extractions == nil {
		return nil
	}
	return a.extractions.Run(ctx)
}

// ExtractSession runs the extractor by hand over a session's messages
// created at or after since (all for the zero time), whatever was
// extracted from them before: its decisions are new events beside the
// old ones. It needs PartCommands.
func (a *App) ExtractSession(ctx context.Context, sessionID string, since time.Time) (commands.Outcome, error) {
	if a.extraction == nil {
		return commands.Outcome{}, ErrExtractionOff
	}
	if _, err := domain.ParseID(sessionID); err != nil {
		return commands.Outcome{}, fmt.Errorf("%w: session %q", domain.ErrNotFound, sessionID)
	}
	d, err := a.reader.ExtractionOf(ctx, sessionID, since)
	if err != nil {
		return commands.Outcome{}, err
	}
	// Recorded after the user's run the log holds last, which the
	// projection may not show yet.
	if d.After, err = a.commands.ExtractionVersion(ctx, d.UserID); err != nil {
		return commands.Outcome{}, err
	}
	return a.extraction.Run(ctx, d)
}

// SessionsOf lists the ids of a user's sessions, oldest first, for a run
// by hand over all of them.
func (a *App) SessionsOf(ctx context.Context, userID string) ([]string, error) {
	if _, err := domain.ParseID(userID); err != nil {
		return nil, fmt.Errorf("%w: user %q", domain.ErrNotFound, userID)
	}
	return a.reader.SessionsOfUser(ctx, userID)
}

// extractor is the configured extractor, nil when extraction is off.
func (a *App) extractor() domain.Extractor {
	if a.cfg.Extractor != "chat" {
		return nil
	}
	return extract.Chat{URL: a.cfg.ExtractorURL, ModelName: a.cfg.ExtractorModel, APIKey: a.cfg.ExtractorAPIKey,
		Client: &http.Client{Timeout: a.cfg.ExtractTimeout}}
}

// settle waits until the memories projection has applied every event
// committed so far (here or in another process), so that what a run
// reads of a user's memories holds what the runs before it stored.
func (a *App) settle(ctx context.Context) error {
	last, err := a.store.Last(ctx)
	if err != nil {
		return err
	}
	return a.waiter.WaitFor(ctx, last, []string{readmodel.Memories{}.Name()})
}

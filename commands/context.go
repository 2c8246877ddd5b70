package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// RecordSnapshot records what a context window held. For the context
// behind an assistant message (d.MessageID set) the snapshot's id is
// derived from the message's, so that it is recorded once however many
// processes try; a second try reports ErrConflict.
func (s *Service) RecordSnapshot(ctx context.Context, meta Meta, d domain.ContextSnapshotData) (Result, error) {
	if d.MessageID != "" {
		d.SnapshotID = SnapshotIDOf(d.MessageID)
	} else {
		d.SnapshotID = domain.NewID().String()
	}
	// Guarded by the user, as every write of a user's things: a snapshot
	// taken while the user was being deleted is not recorded.
	guard, tenant, err := s.owner(ctx, meta, d.UserID, "session", d.SessionID, false)
	if err != nil {
		return Result{}, err
	}
	evs, err := toStore(meta, tenant, []domain.Event{{Type: domain.ContextSnapshotRecorded, Data: d}})
	if err != nil {
		return Result{}, err
	}
	res, err := s.store.AppendMulti(ctx, guard,
		eventstore.StreamAppend{Stream: stream(domain.StreamSnapshot, d.SnapshotID), Expected: eventstore.NoStream(), Events: evs})
	if err != nil {
		return Result{}, fmt.Errorf("record snapshot of session %s: %w", d.SessionID, err)
	}
	return Result{ID: d.SnapshotID, Version: res[1].Version, Cursor: res[1].Last().Cursor}, nil
}

// SnapshotRecorded tells whether the context behind an assistant message
// is recorded in the log already (the context projection may not show it
// yet).
func (s *Service) SnapshotRecorded(ctx context.Context, messageID string) (bool, error) {
	v, err := s.store.StreamVersion(ctx, domain.StreamID(domain.StreamSnapshot, SnapshotIDOf(messageID)))
	return v > 0, err
}

// SnapshotIDOf is the id of the snapshot of an assistant message's context:
// a ULID with the message's time and entropy from a hash of its id.
func SnapshotIDOf(messageID string) string {
	var ms uint64
	if id, err := ulid.ParseStrict(messageID); err == nil {
		ms = id.Time()
	}
	h := sha256.Sum256([]byte("context-snapshot:" + messageID))
	return ulid.MustNew(ms, bytes.NewReader(h[:])).String()
}

// RecordSummary appends a session's next summary, if the session's summary
// stream is still at version after; otherwise another process summarized
// first and ErrConflict says so. messages is the version of each message
// the summary was made from, by id: when one was edited or redacted while
// the summary was being made, the summary would hold its old text, and
// ErrConflict refuses it too (the next pass summarizes afresh).
func (s *Service) RecordSummary(ctx context.Context, meta Meta, after int, messages map[string]int, d domain.SessionSummarizedData) (Result, error) {
	if d.Content == "" || d.ToSeq < d.FromSeq || d.FromSeq < 1 {
		return Result{}, fmt.Errorf("%w: summary of session %s covers %d..%d with %d bytes", domain.ErrInvalid, d.SessionID, d.FromSeq, d.ToSeq, len(d.Content))
	}
	d.Tokens = s.tokens.Count(d.Content)
	guard, tenant, err := s.owner(ctx, meta, d.UserID, "session", d.SessionID, false)
	if err != nil {
		return Result{}, err
	}
	evs, err := toStore(meta, tenant, []domain.Event{{Type: domain.SessionSummarized, Data: d}})
	if err != nil {
		return Result{}, err
	}
	expected := eventstore.Exactly(after)
	if after == 0 {
		expected = eventstore.NoStream()
	}
	appends := []eventstore.StreamAppend{guard, {Stream: stream(domain.StreamSummary, d.SessionID), Expected: expected, Events: evs}}
	for id, version := range messages {
		// A message's own stream holds its edits and redaction: it is
		// at its version less one (none for a message never changed).
		appends = append(appends, eventstore.StreamAppend{Stream: stream(domain.StreamMessage, id), Expected: eventstore.Exactly(version - 1)})
	}
	res, err := s.store.AppendMulti(ctx, appends...)
	if err != nil {
		return Result{}, fmt.Errorf("record summary of session %s: %w", d.SessionID, err)
	}
	return Result{ID: d.SessionID, Version: res[1].Version, Cursor: res[1].Last().Cursor}, nil
}

// DueSnapshot is an assistant message whose context is not recorded yet.
type DueSnapshot struct {
	MessageID, SessionID string
	Seq                  int
	At                   time.Time
}

// WindowRecord is a context window as a snapshot records it.
type WindowRecord struct {
	UserID, Query    string
	MaxTokens, Total int
	Items            []domain.SnapshotItem
}

// SnapshotSource finds assistant messages due for a snapshot and builds
// the context behind one.
type SnapshotSource interface {
	// DueSnapshots returns up to limit due messages, oldest first but
	// those in last after all others, leaving out those in skip.
	DueSnapshots(ctx context.Context, limit int, skip, last []string) ([]DueSnapshot, error)
	// WindowBefore is the window behind d's message: the messages before
	// it and the memories, each as it was at the message's place in the
	// log, however long after it the window is computed.
	WindowBefore(ctx context.Context, d DueSnapshot) (WindowRecord, error)
}

// Snapshotter records the context behind every assistant message, in the
// background, once, also with several processes running: each pass starts
// at a random place in the list of due messages, and a message whose
// snapshot is in the log already is passed over before its window is
// computed, so processes seldom compute the same one. A message whose
// window cannot be made backs off alone (up to maxBackoff) and holds up
// no other: the source leaves it out while it waits, and puts it after
// the messages that never failed once its wait is over, so however many
// fail, newer messages get their snapshots. A pass ends at its third
// failure.
type Snapshotter struct {
	svc      *Service
	src      SnapshotSource
	interval time.Duration
	log      *slog.Logger
	failures backoffs
}

// NewSnapshotter returns a Snapshotter that looks for due messages every
// interval.
func NewSnapshotter(svc *Service, src SnapshotSource, interval time.Duration, log *slog.Logger) *Snapshotter {
	return &Snapshotter{svc: svc, src: src, interval: interval, log: log, failures: newBackoffs(interval)}
}

// snapshotMeta marks the events as the system's own.
var snapshotMeta = Meta{Actor: "system:snapshots"}

// Run records due snapshots until ctx ends.
func (x *Snapshotter) Run(ctx context.Context) error {
	return passes(ctx, x.interval, x.log, "context snapshot pass", x.RunOnce)
}

// RunOnce records the snapshots due now and says how many it recorded.
func (x *Snapshotter) RunOnce(ctx context.Context) (int, error) {
	// Messages waiting out a failure are left out; those past their wait
	// come after every message that never failed.
	now := time.Now()
	waiting, failed := x.failures.split(now)
	due, err := x.src.DueSnapshots(ctx, 100, waiting, failed)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	n, failures := 0, 0
	for _, d := range retriedLast(due, failed) {
		if x.failures.waiting(d.MessageID, now) {
			continue
		}
		recorded, err := x.svc.SnapshotRecorded(ctx, d.MessageID)
		if err != nil {
			return n, err
		}
		if recorded {
			continue // by another process; the projection shows it soon
		}
		w, err := x.src.WindowBefore(ctx, d)
		if err == nil {
			_, err = x.svc.RecordSnapshot(ctx, snapshotMeta, domain.ContextSnapshotData{
				SessionID: d.SessionID, UserID: w.UserID, MessageID: d.MessageID, Query: w.Query,
				Budget: w.MaxTokens, TotalTokens: w.Total, Items: w.Items,
			})
		}
		switch {
		case err == nil:
			n++
			x.failures.forget(d.MessageID)
		case errors.Is(err, eventstore.ErrConflict), errors.Is(err, domain.ErrNotFound):
			// Another process recorded it first, or the session went
			// with its user.
		case ctx.Err() != nil:
			return n, ctx.Err()
		default:
			wait := x.failures.fail(d.MessageID)
			x.log.Warn("context snapshot failed; the message is tried again later", "message_id", d.MessageID, "retry_in", wait, "err", err)
			if failures++; failures >= maxPassFailures {
				return n, nil
			}
		}
	}
	return n, nil
}

// retriedLast orders due for a pass: the messages that never failed, then
// those in failed, each part from a random place on (round to its start),
// so that processes running passes at once seldom take the same message.
func retriedLast(due []DueSnapshot, failed []string) []DueSnapshot {
	return retriedLastBy(due, func(d DueSnapshot) string { return d.MessageID }, failed)
}

// retriedLastBy is retriedLast for items named by key.
func retriedLastBy[T any](due []T, key func(T) string, failed []string) []T {
	var fresh, retried []T
	for _, d := range due {
		if slices.Contains(failed, key(d)) {
			retried = append(retried, d)
		} else {
			fresh = append(fresh, d)
		}
	}
	out := make([]T, 0, len(due))
	for _, part := range [][]T{fresh, retried} {
		if len(part) == 0 {
			continue
		}
		start := rand.IntN(len(part))
		out = append(append(out, part[start:]...), part[:start]...)
	}
	return out
}

// passes runs pass at once and then every interval until ctx ends; a
// failed pass is logged as what failed, and the next one comes as usual.
// The background workers (expiry, snapshots, summaries) share it.
func passes(ctx context.Context, interval time.Duration, log *slog.Logger, what string, pass func(context.Context) (int, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := pass(ctx); err != nil && ctx.Err() == nil {
			log.Warn(what+" failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SummarySource finds sessions due for a summary.
type SummarySource interface {
	// DueSummaries returns up to limit due sessions, most overdue first
	// but those in last after all others, leaving out those in skip.
	DueSummaries(ctx context.Context, limit int, skip, last []string) ([]domain.DueSummary, error)
}

// SummaryWorker makes summaries in the background. A summarizer that fails
// (a chat endpoint down, or one that refuses a session's text) never
// blocks appends or context reads: the session is tried again later,
// backing off up to maxBackoff, and sessions that never failed go
// before those that did, so failing sessions cannot hold up the others.
// A pass ends after maxPassFailures failures: a summarizer that is down
// is called a few times a pass, and each session once per its wait.
type SummaryWorker struct {
	svc        *Service
	src        SummarySource
	summarizer domain.Summarizer
	interval   time.Duration
	log        *slog.Logger
	failures   backoffs
}

const (
	maxPassFailures = 3
)

// NewSummaryWorker returns a worker that looks for due sessions every
// interval.
func NewSummaryWorker(svc *Service, src SummarySource, s domain.Summarizer, interval time.Duration, log *slog.Logger) *SummaryWorker {
	return &SummaryWorker{svc: svc, src: src, summarizer: s, interval: interval, log: log, failures: newBackoffs(interval)}
}

// summaryMeta marks the events as the system's own.
var summaryMeta = Meta{Actor: "system:summaries"}

// Run summarizes due sessions until ctx ends.
func (x *SummaryWorker) Run(ctx context.Context) error {
	return passes(ctx, x.interval, x.log, "summary pass", x.RunOnce)
}

// RunOnce summarizes the sessions due now and says how many summaries it
// recorded. A failing summarizer is logged, not returned.
func (x *SummaryWorker) RunOnce(ctx context.Context) (int, error) {
	// Sessions waiting out a failure are left out; those past their wait
	// come after every session that never failed.
	waiting, failed := x.failures.split(time.Now())
	due, err := x.src.DueSummaries(ctx, 20, waiting, failed)
	if err != nil {
		return 0, err
	}
	n, failures := 0, 0
	for _, d := range due {
		text, err := x.summarizer.Summarize(ctx, d.Previous, d.Lines)
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			wait := x.failures.fail(d.SessionID)
			x.log.Warn("summarizer failed; the session is tried again later", "session_id", d.SessionID, "summarizer", x.summarizer.Name(), "retry_in", wait, "err", err)
			if failures++; failures >= maxPassFailures {
				return n, nil // most likely down for every session: the next pass goes on
			}
			continue
		}
		_, err = x.svc.RecordSummary(ctx, summaryMeta, d.After, d.Versions, domain.SessionSummarizedData{
			SessionID: d.SessionID, UserID: d.UserID, Content: text, FromSeq: d.FromSeq, ToSeq: d.ToSeq, Method: x.summarizer.Name(),
		})
		switch {
		case errors.Is(err, eventstore.ErrConflict):
			// Another process summarized first (or the user changed:
			// the next pass decides afresh).
		case errors.Is(err, domain.ErrNotFound):
			// The user went meanwhile.
		case ctx.Err() != nil:
			return n, ctx.Err()
		case err != nil:
			// The summary was refused (an empty one) or could not be
			// written: this session backs off, the others go on.
			wait := x.failures.fail(d.SessionID)
			x.log.Warn("summary not recorded; the session is tried again later", "session_id", d.SessionID, "retry_in", wait, "err", err)
			if failures++; failures >= maxPassFailures {
				return n, nil
			}
			continue
		default:
			n++
		}
		x.failures.forget(d.SessionID)
	}
	return n, nil
}

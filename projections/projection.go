// Package projections is ARQ's projection engine: handlers, fed by
// watermill-sql's subscriber reading the events table itself, that build
// query tables from the event log.
//
// Each projection is one consumer group with one checkpoint, stored by
// watermill-sql's Postgres offsets adapter. The subscriber applies a batch of
// events in one transaction and moves the checkpoint in that same
// transaction, so every event takes effect exactly once in every projection,
// across crashes and with several processes running the same projection.
// A batch whose writes fail is replayed with each event inside its own
// savepoint: a failing event leaves no partial write, and after bounded
// retries its projection stops at it while the others go on.
package projections

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/eventstore"
)

// Projection builds query tables from events.
type Projection interface {
	// Name identifies the projection's checkpoint and status. It is lower
	// case letters, digits and underscores.
	Name() string
	// Tables lists the tables the projection owns, emptied on rebuild.
	Tables() []string
	// Apply folds one event into the tables. It is called for every event
	// of the log in commit-safe order and ignores those it does not need.
	// It must be deterministic: a rebuild replays the same events.
	Apply(ctx context.Context, tx Tx, e eventstore.Recorded) error
}

// Selective is a Projection that names the event types its Apply acts
// on. The engine then reads only events of those types from the log, and
// skips the others in SQL without sending them.
//
// The checkpoint still moves over every event: each batch also carries the
// last event it looked at, whatever its type, so Apply is still handed an
// event of another type now and then and must ignore it, as it ignores
// every type not listed. A type Apply acts on but EventTypes leaves out is
// applied only when it happens to end a batch: list them all.
type Selective interface {
	Projection
	EventTypes() []string
}

// Sealed is a Projection whose Apply reads no personal field of an event
// (only ids, types, versions and places): the engine hands it events as
// the log stores them, their personal fields sealed (see
// eventstore.Sealer), and spares the key store their reading.
type Sealed interface {
	Projection
	AppliesSealed()
}

// Deferred is a Projection that no read needs to have applied some event
// types at once: an audit catalog, or a queue of background work. Appends
// of those types alone do not wake its projector, which applies them at
// its next poll (after IdlePoll at the latest, in one batch with whatever
// else came), and a command that appended only those does not wait for
// it (Waiter.WaitAppended). A read sent with a minimum position still
// waits for it, and has it poll at once (Waiter.Wait).
type Deferred interface {
	Projection
	// DeferredTypes are the event types it defers; nil: all it applies.
	DeferredTypes() []string
}

// wakeTypes returns the event types whose appends wake p's projector and
// which commands wait for p to apply: those it applies (eventTypes), less
// those it defers. Nil is all; empty is none.
func wakeTypes(p Projection) []string {
	types := eventTypes(p)
	if c, ok := p.(copyProjection); ok {
		p = c.Projection
	}
	d, ok := p.(Deferred)
	if !ok {
		return types
	}
	deferred := d.DeferredTypes()
	if deferred == nil {
		return []string{}
	}
	if types == nil {
		return nil // all but some: woken by all
	}
	out := []string{}
	for _, t := range types {
		if !slices.Contains(deferred, t) {
			out = append(out, t)
		}
	}
	return out
}

// opens tells whether the events p applies are opened before it gets
// them (see Config.Opener): unless p is Sealed.
func opens(p Projection) bool {
	if c, ok := p.(copyProjection); ok {
		p = c.Projection
	}
	_, sealed := p.(Sealed)
	return !sealed
}

// eventTypes returns the event types p applies, or nil for all.
func eventTypes(p Projection) []string {
	if c, ok := p.(copyProjection); ok {
		p = c.Projection
	}
	if s, ok := p.(Selective); ok {
		return append([]string{}, s.EventTypes()...) // never nil: none is not all
	}
	return nil
}

// Coalescer gathers writes of consecutive events and queues them, merged,
// when the engine asks: before the next write queued with Exec, before
// the next read, and before the checkpoint write. Writes
// therefore reach the server in the order the events asked for them, and
// a read sees every earlier event's effect, as without coalescing; only
// runs of coalesced writes between two other writes are merged. A batch
// is one unit of writes (or, when a failed batch is replayed, each event
// alone), so merged writes commit or fail with their events and the
// checkpoint. The merge must give the rows of the writes one by one.
type Coalescer interface {
	// Flush queues the gathered writes with exec and forgets them.
	Flush(exec func(sql string, args ...any))
}

// coalescers are the Coalescers of one unit of writes, in the order they
// were made, so that flushing them is deterministic.
type coalescers struct {
	byKey map[string]Coalescer
	order []Coalescer
}

func (c *coalescers) get(key string, create func() Coalescer) Coalescer {
	if co, ok := c.byKey[key]; ok {
		return co
	}
	if c.byKey == nil {
		c.byKey = map[string]Coalescer{}
	}
	co := create()
	c.byKey[key] = co
	c.order = append(c.order, co)
	return co
}

// flush queues what every Coalescer gathered, onto b.
func (c *coalescers) flush(b *pgx.Batch) {
	if len(c.order) == 0 {
		return // every Exec asks: most units coalesce nothing
	}
	exec := func(sql string, args ...any) { b.Queue(sql, args...) }
	for _, co := range c.order {
		co.Flush(exec)
	}
}

// Tx is what a projection may do while applying one event. Exec queues a
// write; the engine sends the queued writes in one round trip, inside the
// event's savepoint, after Apply returns. Query and QueryRow read at once,
// so they see the tables as they were before this event's writes.
type Tx interface {
	Exec(sql string, args ...any)
	// Coalesce returns the Coalescer kept under key in the current unit of
	// writes, made by create when there is none yet. A projection gathers
	// in it the writes of several events that would change the same rows
	// again and again (a count, a stream's head), and the engine sends
	// them as few statements: see Coalescer.
	Coalesce(key string, create func() Coalescer) Coalescer
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

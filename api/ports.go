package api

import (
	"context"
	"time"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
	"github.com/arq-memory/arq/queries"
)

// What the API is built on, each by what its handlers use: small
// interfaces, so that a handler can be tested with fakes and the API
// knows no database. The process wires queries.Service, commands.Service,
// the event store and the rest behind them (see package app).

// UserQueries read users.
type UserQueries interface {
	GetUser(ctx context.Context, tenant, id string) (readmodel.User, error)
	ListUsers(ctx context.Context, tenant, externalID string, p readmodel.Page) ([]readmodel.User, string, error)
}

// SessionQueries read sessions.
type SessionQueries interface {
	GetSession(ctx context.Context, id string) (readmodel.Session, error)
	SessionByTokenHash(ctx context.Context, hash string) (readmodel.Session, error)
	ListSessions(ctx context.Context, userID string, p readmodel.Page) ([]readmodel.Session, string, error)
}

// MessageQueries read messages.
type MessageQueries interface {
	GetMessage(ctx context.Context, id string) (readmodel.Message, error)
	ListMessages(ctx context.Context, sessionID string, p readmodel.Page) ([]readmodel.Message, string, error)
	// DerivedFrom lists the memory events extractions decided from a
	// message, with each memory as it is now.
	DerivedFrom(ctx context.Context, messageID string) ([]readmodel.Derived, error)
}

// MemoryQueries read and search memories.
type MemoryQueries interface {
	GetMemory(ctx context.Context, id string) (readmodel.Memory, error)
	ListMemories(ctx context.Context, userID string, f readmodel.MemoryFilter, p readmodel.Page) ([]readmodel.Memory, string, error)
	// QueryEmbedding is the client's embedding (nil: none), checked, or
	// the provider's of text, or none.
	QueryEmbedding(ctx context.Context, values []float64, text string) ([]float32, error)
	SearchMemories(ctx context.Context, userID, query string, embedding []float32, f readmodel.MemoryFilter, limit int) ([]readmodel.MemoryHit, error)
}

// ContextQueries read context windows and snapshots.
type ContextQueries interface {
	// ContextWindow is a window as served, from a cache when one holds it.
	ContextWindow(ctx context.Context, sessionID string, q queries.WindowQuery, now time.Time) (queries.EncodedWindow, error)
	// SnapshotWindow is a window as the tables hold it now, to record.
	SnapshotWindow(ctx context.Context, sessionID string, q queries.WindowQuery, now time.Time) (readmodel.Window, error)
	GetSnapshot(ctx context.Context, id string) (readmodel.Snapshot, error)
	SnapshotOfMessage(ctx context.Context, messageID string) (readmodel.Snapshot, error)
	ListSnapshots(ctx context.Context, sessionID string, p readmodel.Page) ([]readmodel.Snapshot, string, error)
}

// Queries are every read of the API (queries.Service).
type Queries interface {
	EntityReader
	UserQueries
	SessionQueries
	MessageQueries
	MemoryQueries
	ContextQueries
	// Stats counts a tenant's resources and events.
	Stats(ctx context.Context, tenant string) (readmodel.Stats, error)
}

// UserCommands change users.
type UserCommands interface {
	RegisterUser(ctx context.Context, meta commands.Meta, cmd domain.RegisterUser) (commands.Result, error)
	UpdateUser(ctx context.Context, meta commands.Meta, id string, expected []int, cmd domain.UpdateProfile) (commands.Result, error)
	DeleteUser(ctx context.Context, meta commands.Meta, id string, expected []int) (commands.Result, error)
}

// SessionCommands change sessions.
type SessionCommands interface {
	StartSession(ctx context.Context, meta commands.Meta, userID string, cmd domain.StartSession) (commands.Result, error)
	ExtendSession(ctx context.Context, meta commands.Meta, id string, expected []int, ttl time.Duration) (commands.Result, error)
	CloseSession(ctx context.Context, meta commands.Meta, id string, expected []int) (commands.Result, error)
}

// MessageCommands append and change messages.
type MessageCommands interface {
	AppendMessages(ctx context.Context, meta commands.Meta, sessionID string, msgs []domain.NewMessage) (commands.Result, error)
	EditMessage(ctx context.Context, meta commands.Meta, id string, expected []int, cmd domain.EditMessage) (commands.Result, error)
	RedactMessage(ctx context.Context, meta commands.Meta, id string, expected []int, reason string) (commands.Result, error)
	// RedactMessageWithDerived deletes the live memories extractions
	// stored from the message and redacts it, in one transaction.
	RedactMessageWithDerived(ctx context.Context, meta commands.Meta, id string, expected []int, reason string) (commands.Result, error)
}

// MemoryCommands change memories.
type MemoryCommands interface {
	StoreMemory(ctx context.Context, meta commands.Meta, userID string, cmd domain.StoreMemory) (commands.Result, error)
	UpdateMemory(ctx context.Context, meta commands.Meta, id string, expected []int, cmd domain.UpdateMemory) (commands.Result, error)
	DeleteMemory(ctx context.Context, meta commands.Meta, id string, expected []int) (commands.Result, error)
}

// Commands are every command of the API (commands.Service).
type Commands interface {
	UserCommands
	SessionCommands
	MessageCommands
	MemoryCommands
	RecordSnapshot(ctx context.Context, meta commands.Meta, d domain.ContextSnapshotData) (commands.Result, error)
}

// Erasures erase users, messages and memories to the end: data keys,
// kept answers, the erasure's event, and, once the projections applied
// it, the caches' copies (commands.Eraser).
type Erasures interface {
	EraseUser(ctx context.Context, meta commands.Meta, id string) (commands.Result, error)
	EraseMessage(ctx context.Context, meta commands.Meta, id string) (commands.Result, error)
	EraseMemory(ctx context.Context, meta commands.Meta, id string) (commands.Result, error)
	// EraseMessageWithDerived erases the memories extractions stored
	// from the message, then the message.
	EraseMessageWithDerived(ctx context.Context, meta commands.Meta, id string) (commands.Result, error)
}

// Waiter waits until the projections include the event at a cursor
// (projections.Waiter): every projection for X-Arq-Min-Position (Wait),
// those that apply a command's own append for read-your-writes
// (WaitAppended).
type Waiter interface {
	Wait(ctx context.Context, c eventstore.Cursor) error
	WaitAppended(ctx context.Context, c eventstore.Cursor) error
}

// EventLog reads the event log (eventstore.Store) for the log and stream
// endpoints.
type EventLog interface {
	Last(ctx context.Context) (eventstore.Cursor, error)
	ReadAll(ctx context.Context, after eventstore.Cursor, limit int, f eventstore.Filter) ([]eventstore.Recorded, error)
	// Open opens events that reached the server sealed, from the live
	// topic (see eventstore.Sealer), with the data keys as they are now.
	Open(ctx context.Context, events []eventstore.Recorded) error
	Verify(ctx context.Context, streamID string, progress func(done int64)) (eventstore.Verification, error)
	VerifyStream(ctx context.Context, streamID string, progress func(done int64)) (eventstore.Verification, error)
}

// HistoryReader reads entities as they were, from the log
// (history.Reader).
type HistoryReader interface {
	History(ctx context.Context, kind domain.Kind, id string) ([]history.Entry, error)
	At(ctx context.Context, kind domain.Kind, id string, version int, asOf *time.Time) (map[string]any, error)
	Audit(ctx context.Context, userID string, f eventstore.Filter, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error)
	Items(ctx context.Context, sessionID string, items []domain.SnapshotItem) ([]history.Item, error)
	// Provenance is every event of a memory an extraction decided, with
	// the messages it read as they were.
	Provenance(ctx context.Context, memoryID string) ([]history.Derivation, error)
}

// Health is what /readyz and /v1/stats ask of the database and the
// projections.
type Health interface {
	// Ping returns nil when Postgres answers.
	Ping(ctx context.Context) error
	// Stopped names the projections stopped on a failing event.
	Stopped(ctx context.Context) ([]string, error)
	// Statuses are where each projection stands.
	Statuses(ctx context.Context) ([]projections.Status, error)
}

// Pinger is a service the API works without, such as Redis: Health
// returns nil when it answers.
type Pinger interface {
	Health(ctx context.Context) error
}

package domain

import "time"

// Event types. The payload of each is the struct named alongside.
const (
	UserRegistered     = "user.registered"      // UserRegisteredData
	UserProfileUpdated = "user.profile_updated" // UserProfileUpdatedData
	UserDeleted        = "user.deleted"         // UserDeletedData

	ExternalIDClaimed  = "user.external_id_claimed"  // ExternalIDData
	ExternalIDReleased = "user.external_id_released" // ExternalIDData

	SessionStarted  = "session.started"  // SessionStartedData
	SessionExtended = "session.extended" // SessionExtendedData
	SessionClosed   = "session.closed"   // SessionClosedData
	SessionExpired  = "session.expired"  // SessionExpiredData

	// MessageAppended goes to the session's message log stream; the event's
	// stream version is the message's sequence number in the session.
	MessageAppended = "message.appended" // MessageAppendedData
	// MessageEdited and MessageRedacted go to the message's own stream.
	MessageEdited   = "message.edited"   // MessageEditedData
	MessageRedacted = "message.redacted" // MessageRedactedData

	MemoryStored  = "memory.stored"  // MemoryStoredData
	MemoryUpdated = "memory.updated" // MemoryUpdatedData
	MemoryDeleted = "memory.deleted" // MemoryDeletedData
	MemoryExpired = "memory.expired" // MemoryExpiredData

	SessionSummarized = "session.summarized" // SessionSummarizedData

	ContextSnapshotRecorded = "context.snapshot_recorded" // ContextSnapshotData

	// Erasures (see personal.go): each records that the data keys of a
	// person or an entity were deleted, so the personal fields they sealed
	// are unreadable everywhere, and holds none of that data itself.
	UserErased    = "user.erased"    // UserErasedData
	MessageErased = "message.erased" // MessageErasedData
	MemoryErased  = "memory.erased"  // MemoryErasedData
)

// Why an erasure happened.
const (
	// ErasedOnRequest: a client asked for it.
	ErasedOnRequest = "request"
	// ErasedForRetention: the data outlived the retention period.
	ErasedForRetention = "retention"
)

// UserErasedData records that a user's personal data was erased: every
// data key they own is gone. An erased user is deleted too.
type UserErasedData struct {
	Reason string `json:"reason"`
}

// MessageErasedData records that a message was erased, with the summaries
// and snapshots that held its text. It goes to the message's own stream.
type MessageErasedData struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	// Seq is the message's sequence number in its session.
	Seq    int    `json:"seq"`
	Reason string `json:"reason"`
	// Summaries are the ids of the session.summarized events erased with
	// the message (every summary that covered it).
	Summaries []string `json:"summaries,omitempty"`
	// Snapshots are the ids of the context snapshots whose query was
	// erased with it (every snapshot that held it).
	Snapshots []string `json:"snapshots,omitempty"`
}

// MemoryErasedData records that a memory was erased.
type MemoryErasedData struct {
	UserID string `json:"user_id"`
	Reason string `json:"reason"`
}

// Event is an event a command decided: its type and its payload (one of the
// *Data structs below). The stream it goes to is the command's concern.
type Event struct {
	Type string
	Data any
}

// UserRegisteredData registers a user.
type UserRegisteredData struct {
	UserID     string         `json:"user_id"`
	Tenant     string         `json:"tenant"`
	ExternalID string         `json:"external_id"`
	Name       string         `json:"name"`
	Email      string         `json:"email,omitempty"`
	Metadata   map[string]any `json:"metadata"`
}

// UserProfileUpdatedData carries the profile fields that changed; absent
// fields kept their value. Metadata, when not null, replaces the old map
// (null, not omitted, so that an empty map still says "replace").
type UserProfileUpdatedData struct {
	Name     *string        `json:"name,omitempty"`
	Email    *string        `json:"email,omitempty"`
	Metadata map[string]any `json:"metadata"`
}

// UserDeletedData marks a user deleted; its sessions and memories are no
// longer served.
type UserDeletedData struct{}

// ExternalIDData claims or releases an external id for a user.
type ExternalIDData struct {
	UserID     string `json:"user_id"`
	Tenant     string `json:"tenant"`
	ExternalID string `json:"external_id"`
}

// SessionStartedData starts a session. Only the hash of its token is kept.
type SessionStartedData struct {
	SessionID string         `json:"session_id"`
	UserID    string         `json:"user_id"`
	Title     string         `json:"title"`
	Metadata  map[string]any `json:"metadata"`
	TokenHash string         `json:"token_hash"`
	// TTLSeconds is the session's time to live; 0 means it never expires.
	TTLSeconds int64      `json:"ttl_seconds"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
}

// SessionExtendedData moves a session's expiry.
type SessionExtendedData struct {
	ExpiresAt time.Time `json:"expires_at"`
}

// SessionClosedData closes a session.
type SessionClosedData struct{}

// SessionExpiredData records that a session's time ran out.
type SessionExpiredData struct {
	ExpiredAt time.Time `json:"expired_at"`
}

// MessageAppendedData appends a message to a session.
type MessageAppendedData struct {
	MessageID string         `json:"message_id"`
	SessionID string         `json:"session_id"`
	UserID    string         `json:"user_id"`
	Role      string         `json:"role"`
	Content   string         `json:"content"`
	Name      string         `json:"name,omitempty"`
	Metadata  map[string]any `json:"metadata"`
	Tokens    int            `json:"tokens"`
	// Embedding, when the client or the provider gave one. An optional
	// field added later: events without it read as before, so the schema
	// version stays 1.
	Embedding []float32 `json:"embedding,omitempty"`
}

// MessageEditedData replaces a message's content (and its token count)
// and, when not null, its metadata. Embedding is the embedding of the
// content as edited: the old one when the content stayed, none when the
// content changed and no new one was given.
type MessageEditedData struct {
	Content   string         `json:"content"`
	Tokens    int            `json:"tokens"`
	Metadata  map[string]any `json:"metadata"`
	Embedding []float32      `json:"embedding,omitempty"`
}

// MessageRedactedData removes a message from every read; its history
// remains in the log.
type MessageRedactedData struct {
	Reason string `json:"reason,omitempty"`
}

// MemoryStoredData stores a memory of a user. Schema version 2 groups the
// session and message the memory came from under Source; version 1 had
// them as source_session_id and source_message_id (see upcast.go).
type MemoryStoredData struct {
	MemoryID   string         `json:"memory_id"`
	UserID     string         `json:"user_id"`
	Type       string         `json:"type"`
	Content    string         `json:"content"`
	Importance float64        `json:"importance"`
	Tags       []string       `json:"tags"`
	Metadata   map[string]any `json:"metadata"`
	Source     *MemorySource  `json:"source,omitempty"`
	Tokens     int            `json:"tokens"`
	ExpiresAt  *time.Time     `json:"expires_at,omitempty"`
	// Embedding is optional and was added without a schema version: an
	// event without it reads as a memory without one.
	Embedding []float32 `json:"embedding,omitempty"`
	// Provenance, Reason and Supersedes are set for a memory an
	// extraction made (see extraction.go): the run and messages behind
	// it, the model's reason (personal), and the memory it replaced.
	// Optional, so the schema version stays.
	Provenance *Provenance `json:"provenance,omitempty"`
	Reason     string      `json:"reason,omitempty"`
	Supersedes string      `json:"supersedes,omitempty"`
}

// MemorySource is where a memory came from.
type MemorySource struct {
	SessionID string `json:"session_id,omitempty"`
	MessageID string `json:"message_id,omitempty"`
}

// MemoryUpdatedData carries the fields that changed; absent (or null)
// fields kept their value. ClearExpiry removes the expiry; ClearEmbedding
// removes the embedding (the content changed and no new one came).
type MemoryUpdatedData struct {
	Content        *string        `json:"content,omitempty"`
	Tokens         *int           `json:"tokens,omitempty"`
	Importance     *float64       `json:"importance,omitempty"`
	Tags           *[]string      `json:"tags,omitempty"`
	Metadata       map[string]any `json:"metadata"`
	ExpiresAt      *time.Time     `json:"expires_at,omitempty"`
	ClearExpiry    bool           `json:"clear_expiry,omitempty"`
	Embedding      []float32      `json:"embedding,omitempty"`
	ClearEmbedding bool           `json:"clear_embedding,omitempty"`
	// Provenance and Reason are set for a change an extraction decided.
	Provenance *Provenance `json:"provenance,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// MemoryDeletedData deletes a memory.
type MemoryDeletedData struct{}

// MemoryExpiredData records that a memory's time ran out.
type MemoryExpiredData struct {
	ExpiredAt time.Time `json:"expired_at"`
}

// SessionSummarizedData is a summary of a session's messages FromSeq to
// ToSeq, which folds in the summary before it (so the latest covers 1 to
// ToSeq).
type SessionSummarizedData struct {
	SessionID string `json:"session_id"`
	UserID    string `json:"user_id"`
	Content   string `json:"content"`
	Tokens    int    `json:"tokens"`
	FromSeq   int    `json:"from_seq"`
	ToSeq     int    `json:"to_seq"`
	// Method names the summarizer: "extractive" or the chat model's name.
	Method string `json:"method"`
}

// Context item kinds.
const (
	ItemSummary = "summary"
	ItemMessage = "message"
	ItemMemory  = "memory"
)

// SnapshotItem names one item a context held: which entity, at which
// version, and what it cost. Its text as it was is in the log.
type SnapshotItem struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Version int    `json:"version"`
	// Seq is a message's sequence number in its session (messages only).
	Seq int `json:"seq,omitempty"`
	// Tokens is the cost of the item in the window (ItemOverhead included).
	Tokens int `json:"tokens"`
}

// ContextSnapshotData records what a context window held: for an assistant
// message (MessageID set), the context behind it; or one a client asked
// to keep.
type ContextSnapshotData struct {
	SnapshotID  string         `json:"snapshot_id"`
	SessionID   string         `json:"session_id"`
	UserID      string         `json:"user_id"`
	MessageID   string         `json:"message_id,omitempty"`
	Query       string         `json:"query"`
	Budget      int            `json:"max_tokens"`
	TotalTokens int            `json:"total_tokens"`
	Items       []SnapshotItem `json:"items"`
}

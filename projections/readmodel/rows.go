package readmodel

import "time"

// User is a user as the API serves it.
type User struct {
	ID         string         `json:"id"`
	ExternalID string         `json:"external_id"`
	Name       string         `json:"name"`
	Email      string         `json:"email"`
	Metadata   map[string]any `json:"metadata"`
	Version    int            `json:"version"`
	CreatedAt  time.Time      `json:"created_at"`
	UpdatedAt  time.Time      `json:"updated_at"`
}

// Session is a session as the API serves it; never its token hash.
type Session struct {
	ID           string         `json:"id"`
	UserID       string         `json:"user_id"`
	Title        string         `json:"title"`
	Metadata     map[string]any `json:"metadata"`
	Status       string         `json:"status"`
	ExpiresAt    *time.Time     `json:"expires_at"`
	MessageCount int            `json:"message_count"`
	Version      int            `json:"version"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	ClosedAt     *time.Time     `json:"closed_at,omitempty"`
}

// Message is a message as the API serves it.
type Message struct {
	ID        string         `json:"id"`
	SessionID string         `json:"session_id"`
	UserID    string         `json:"user_id"`
	Seq       int            `json:"seq"`
	Role      string         `json:"role"`
	Content   string         `json:"content"`
	Name      string         `json:"name,omitempty"`
	Metadata  map[string]any `json:"metadata"`
	Tokens    int            `json:"tokens"`
	// EmbeddingDim is the length of the message's embedding, 0 without
	// one (the vector itself is in the log, not in every read).
	EmbeddingDim int       `json:"embedding_dim"`
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Memory is a memory as the API serves it.
type Memory struct {
	ID              string         `json:"id"`
	UserID          string         `json:"user_id"`
	Type            string         `json:"type"`
	Content         string         `json:"content"`
	Importance      float64        `json:"importance"`
	Tags            []string       `json:"tags"`
	Metadata        map[string]any `json:"metadata"`
	SourceSessionID *string        `json:"source_session_id"`
	SourceMessageID *string        `json:"source_message_id"`
	Tokens          int            `json:"tokens"`
	ExpiresAt       *time.Time     `json:"expires_at"`
	// EmbeddingDim is the length of the memory's embedding, 0 without
	// one (the vector itself is in the log, not in every read).
	EmbeddingDim int       `json:"embedding_dim"`
	Version      int       `json:"version"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// MemoryHit is a memory found by a search, with its relevance.
type MemoryHit struct {
	Memory
	Score float64 `json:"score"`
}

// ExpiryDue names an entity whose expiry time has passed.
type ExpiryDue struct {
	ID      string
	Version int
}

// Stats counts what the query tables hold, and the events of the log.
type Stats struct {
	Users    int64 `json:"users"`
	Sessions int64 `json:"sessions"`
	Messages int64 `json:"messages"`
	Memories int64 `json:"memories"`
	Events   int64 `json:"events"`
}

package api

import (
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/logproof"
	"github.com/arq-memory/arq/projections/readmodel"
)

// The answers below are the shapes the handlers encode that no other
// package owns. The OpenAPI document's schemas are made from these types
// and the read models' (see openapi_schemas.go), so a field added to a
// type is in the document with it.

// pageOf is one page of a listing and the cursor of the next ("" on the
// last page).
type pageOf[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

// itemsOf is a whole listing, in one answer.
type itemsOf[T any] struct {
	Items []T `json:"items"`
}

// health is the answer of /healthz.
type health struct {
	Status  string `json:"status"`
	Version string `json:"version"`
}

// readiness is the answer of /readyz: ready, and why not.
type readiness struct {
	Ready  bool           `json:"ready"`
	Checks map[string]any `json:"checks"`
}

// projectionStat is a projection's state in /v1/stats.
type projectionStat struct {
	Name     string `json:"name"`
	State    string `json:"state"`
	Position string `json:"position"`
	Lag      int64  `json:"lag"`
}

// statsBody is the answer of /v1/stats.
type statsBody struct {
	Counts      readmodel.Stats  `json:"counts"`
	Projections []projectionStat `json:"projections"`
}

// verification is what a walk of one stream's hash chain found.
type verification struct {
	StreamID   string             `json:"stream_id"`
	Intact     bool               `json:"intact"`
	Events     int64              `json:"events"`
	Breaks     []eventstore.Break `json:"breaks"`
	FirstBreak *eventstore.Break  `json:"first_break"`
}

// inclusionProof proves an event is in the log at a tree size.
type inclusionProof struct {
	logproof.Inclusion
	Checkpoint *checkpointJSON `json:"checkpoint,omitempty"`
}

// accepted answers a command whose change the query tables do not hold
// yet (202): what it appended and where in the log.
type accepted struct {
	ID       string            `json:"id"`
	Version  int               `json:"version"`
	Position string            `json:"position"`
	Messages []appendedMessage `json:"messages,omitempty"`
}

// appendedBatch answers a message append of {"messages": [...]}.
type appendedBatch struct {
	Messages []readmodel.Message `json:"messages"`
}

// sessionWithToken is a started session with its token, shown once.
type sessionWithToken struct {
	readmodel.Session
	Token string `json:"token"`
}

// keyWithSecret is a created key with its secret, shown once.
type keyWithSecret struct {
	Key
	Secret string `json:"key"`
}

// historyBody is an entity's history, oldest first.
type historyBody = itemsOf[history.Entry]

// consolidation is the answer of a consolidation: its run (the
// provenance of every event it recorded), each merge, how many memories
// it examined, and the model that decided the near-duplicates (null: none,
// exact duplicates alone were merged).
type consolidation struct {
	RunID    string   `json:"run_id"`
	Merged   []merged `json:"merged"`
	Examined int      `json:"examined"`
	Model    *string  `json:"model"`
}

// merged is one merge: the memory kept, those superseded by it, why, and
// how (exact, update or supersede).
type merged struct {
	Kept       string   `json:"kept"`
	Superseded []string `json:"superseded"`
	Reason     string   `json:"reason"`
	Action     string   `json:"action"`
}

package readmodel

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/arq-memory/arq/domain"
)

// pastItems are the things a window puts back as they were at a place in
// the log (see WindowAt). Each message and memory named replaces its row
// in the query tables, if it has one, by its row then, if it had one
// then; the queries read them through a common table expression named
// as the table, so the window's queries stay the ones Window sends. A nil
// *pastItems is the tables as they are.
type pastItems struct {
	messageIDs, memoryIDs   []string
	messageRows, memoryRows string // JSON arrays of pastMessage and pastMemory
	messageEmb              map[string][]float32
	memories                []pastMemory
	// summaryKnown says summary (nil: none) is the window's summary,
	// rather than the newest one the table holds.
	summaryKnown bool
	summary      *Summary
}

// pastMessage is a message row as it was, in the columns of messages.
type pastMessage struct {
	ID           string         `json:"id"`
	SessionID    string         `json:"session_id"`
	UserID       string         `json:"user_id"`
	Seq          int            `json:"seq"`
	Role         string         `json:"role"`
	Content      string         `json:"content"`
	Name         string         `json:"name"`
	Metadata     map[string]any `json:"metadata"`
	Tokens       int            `json:"tokens"`
	EmbeddingDim int            `json:"embedding_dim"`
	Version      int            `json:"version"`
	CreatedAt    time.Time      `json:"created_at"`
	UpdatedAt    time.Time      `json:"updated_at"`
	Embedding    []float32      `json:"embedding"`
}

const pastMessageCols = `id text, session_id text, user_id text, seq int, role text, content text, name text, metadata jsonb,
	tokens int, embedding_dim int, version int, created_at timestamptz, updated_at timestamptz, embedding real[]`

func pastMessageOf(m *domain.Message) pastMessage {
	e := m.Embedding()
	return pastMessage{ID: m.ID(), SessionID: m.SessionID(), UserID: m.UserID(), Seq: m.Seq(), Role: m.Role(), Content: m.Content(),
		Name: m.Name(), Metadata: nonNilMap(m.Metadata()), Tokens: m.Tokens(), EmbeddingDim: len(e), Version: m.Version(),
		CreatedAt: m.CreatedAt(), UpdatedAt: m.UpdatedAt(), Embedding: e}
}

// pastMemory is a memory row as it was, in the columns of memories.
type pastMemory struct {
	Memory
	Embedding []float32 `json:"-"`
}

const pastMemoryCols = `id text, user_id text, type text, content text, importance float8, tags text[], metadata jsonb,
	source_session_id text, source_message_id text, tokens int, expires_at timestamptz, embedding_dim int, version int,
	created_at timestamptz, updated_at timestamptz`

func pastMemoryOf(m *domain.Memory) pastMemory {
	e := m.Embedding()
	return pastMemory{Memory: Memory{ID: m.ID(), UserID: m.UserID(), Type: m.Type(), Content: m.Content(), Importance: m.Importance(),
		Tags: nonNil(m.Tags()), Metadata: nonNilMap(m.Metadata()), SourceSessionID: orNil(m.SourceSessionID()),
		SourceMessageID: orNil(m.SourceMessageID()), Tokens: m.Tokens(), ExpiresAt: m.ExpiresAt(), EmbeddingDim: len(e),
		Version: m.Version(), CreatedAt: m.CreatedAt(), UpdatedAt: m.UpdatedAt()}, Embedding: e}
}

// overMessages is sql, which reads the session's ($1) messages, reading
// them as they were; its arguments follow args.
func (p *pastItems) overMessages(sql string, args []any) (string, []any) {
	if p == nil || len(p.messageIDs) == 0 {
		return sql, args
	}
	n := len(args)
	return `WITH messages AS (
			SELECT ` + messageCols + `, embedding FROM messages WHERE session_id = $1 AND id <> ALL ($` + strconv.Itoa(n+1) + `::text[])
			UNION ALL
			SELECT ` + messageCols + `, embedding FROM jsonb_to_recordset($` + strconv.Itoa(n+2) + `::jsonb) AS p (` + pastMessageCols + `))
		` + sql, append(args, p.messageIDs, p.messageRows)
}

// overMemories is sql, which reads the user's ($1) memories and begins
// with WITH, reading them as they were; full-text ranks come from their
// contents then. Its arguments follow args.
func (p *pastItems) overMemories(sql string, args []any) (string, []any) {
	if p == nil || len(p.memoryIDs) == 0 {
		return sql, args
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(sql), "WITH ")
	if !ok {
		panic(fmt.Sprintf("readmodel: overMemories needs a query starting with WITH: %.40s", sql))
	}
	// Not materialized: each reference is then the table's indexed read
	// beside the few rows put back, rather than all of the user's
	// memories copied first. The rows put back were stored by the
	// window's place in the log (they are folded at it).
	n := len(args)
	return `WITH memories AS NOT MATERIALIZED (
			SELECT ` + memoryCols + `, search, stored_tx, stored_position FROM memories WHERE user_id = $1 AND id <> ALL ($` + strconv.Itoa(n+1) + `::text[])
			UNION ALL
			SELECT ` + memoryCols + `, to_tsvector('english', content), '0'::xid8, 0::bigint
			FROM jsonb_to_recordset($` + strconv.Itoa(n+2) + `::jsonb) AS p (` + pastMemoryCols + `)),
		` + rest, append(args, p.memoryIDs, p.memoryRows)
}

// otherMemories is cond, a condition over the memories table, leaving out
// the memories put back as they were.
func (p *pastItems) otherMemories(cond string, args []any) (string, []any) {
	if p == nil || len(p.memoryIDs) == 0 {
		return cond, args
	}
	args = append(args, p.memoryIDs)
	return cond + ` AND id <> ALL ($` + strconv.Itoa(len(args)) + `::text[])`, args
}

// memoryEmbeddings are the embeddings of the memories put back, of those
// live at now and (when not nil) stored by createdBefore.
func (p *pastItems) memoryEmbeddings(now time.Time, createdBefore *time.Time) map[string][]float32 {
	if p == nil {
		return nil
	}
	out := map[string][]float32{}
	for _, m := range p.memories {
		if len(m.Embedding) > 0 && (m.ExpiresAt == nil || m.ExpiresAt.After(now)) && (createdBefore == nil || !m.CreatedAt.After(*createdBefore)) {
			out[m.ID] = m.Embedding
		}
	}
	return out
}

// messageEmbedding is the embedding of message id as it was, when it is
// one put back.
func (p *pastItems) messageEmbedding(id string) ([]float32, bool) {
	if p == nil {
		return nil, false
	}
	e, ok := p.messageEmb[id]
	return e, ok
}

// jsonRows encodes rows for jsonb_to_recordset.
func jsonRows[T any](rows []T) (string, error) {
	if rows == nil {
		return "[]", nil
	}
	b, err := json.Marshal(rows)
	if err != nil {
		return "", fmt.Errorf("encode past rows: %w", err)
	}
	return string(b), nil
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

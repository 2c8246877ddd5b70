package readmodel

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// MemoryFilter narrows memory reads; zero fields match everything.
type MemoryFilter struct {
	Types         []string
	Tag           string
	SessionID     string
	MinImportance *float64
	CreatedBefore *time.Time
	CreatedAfter  *time.Time
	// Metadata matches memories whose metadata holds each key with the
	// value: a string, or a number or boolean written the same way.
	Metadata map[string]string
	// Q is a full-text filter (web search syntax).
	Q string
}

const memoryCols = `id, user_id, type, content, importance, tags, metadata, source_session_id, source_message_id,
	tokens, expires_at, embedding_dim, version, created_at, updated_at`

func scanMemory(row pgx.Row) (Memory, error) {
	var m Memory
	err := row.Scan(&m.ID, &m.UserID, &m.Type, &m.Content, &m.Importance, &m.Tags, &m.Metadata, &m.SourceSessionID,
		&m.SourceMessageID, &m.Tokens, &m.ExpiresAt, &m.EmbeddingDim, &m.Version, &m.CreatedAt, &m.UpdatedAt)
	return m, err
}

// live keeps memories whose time has not run out: an expired memory is
// gone from every read at its expiry time, before its event is projected.
const live = `(expires_at IS NULL OR expires_at > now())`

// where builds the filter's SQL conditions, numbering arguments after args.
func (f MemoryFilter) where(args []any) (string, []any) {
	conds := []string{live}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if len(f.Types) > 0 {
		conds = append(conds, "type = ANY ("+arg(f.Types)+")")
	}
	if f.Tag != "" {
		conds = append(conds, "tags @> ARRAY["+arg(f.Tag)+"]::text[]")
	}
	if f.SessionID != "" {
		conds = append(conds, "source_session_id = "+arg(f.SessionID))
	}
	if f.MinImportance != nil {
		conds = append(conds, "importance >= "+arg(*f.MinImportance))
	}
	if f.CreatedBefore != nil {
		conds = append(conds, "created_at < "+arg(*f.CreatedBefore))
	}
	if f.CreatedAfter != nil {
		conds = append(conds, "created_at > "+arg(*f.CreatedAfter))
	}
	for k, v := range f.Metadata {
		alts := []string{"metadata @> " + arg(jsonPair(k, v))}
		// A number or boolean written the same way matches too.
		var scalar any
		if err := json.Unmarshal([]byte(v), &scalar); err == nil {
			switch scalar.(type) {
			case float64, bool:
				b, _ := json.Marshal(map[string]json.RawMessage{k: json.RawMessage(v)}) // not %q: Go's escapes are not JSON's
				alts = append(alts, "metadata @> "+arg(string(b)))
			}
		}
		conds = append(conds, "("+strings.Join(alts, " OR ")+")")
	}
	if f.Q != "" {
		conds = append(conds, "search @@ websearch_to_tsquery('english', "+arg(f.Q)+")")
	}
	return strings.Join(conds, " AND "), args
}

// onlyLive says f keeps every live memory: Types, Tag, SessionID,
// MinImportance, CreatedBefore, CreatedAfter, Metadata and Q are unset.
func (f MemoryFilter) onlyLive() bool {
	return len(f.Types) == 0 && f.Tag == "" && f.SessionID == "" && f.MinImportance == nil &&
		f.CreatedBefore == nil && f.CreatedAfter == nil && len(f.Metadata) == 0 && f.Q == ""
}

func jsonPair(k, v string) string {
	b, _ := json.Marshal(map[string]string{k: v})
	return string(b)
}

// GetMemory reads one live memory.
func (r *Reader) GetMemory(ctx context.Context, id string) (Memory, error) {
	m, err := scanMemory(r.db.QueryRow(ctx, `SELECT `+memoryCols+` FROM memories WHERE id = $1 AND `+live, id))
	return m, notFound(err, "memory", id)
}

// ListMemories lists a user's live memories, newest first, filtered.
func (r *Reader) ListMemories(ctx context.Context, userID string, f MemoryFilter, p Page) ([]Memory, string, error) {
	list := "memories:" + userID
	limit, after, err := bounds(p, list)
	if err != nil {
		return nil, "", err
	}
	cond, args := f.where([]any{userID, after, limit + 1})
	rows, err := r.db.Query(ctx, `SELECT `+memoryCols+` FROM memories
		WHERE user_id = $1 AND ($2 = '' OR id < $2) AND `+cond+` ORDER BY id DESC LIMIT $3`, args...)
	return collect(rows, err, scanMemory, limit, list, func(m Memory) string { return m.ID })
}

// SearchMemories ranks a user's live memories by full-text relevance to
// query (web search syntax), best first; each hit carries its score. With
// an embedding, the memories nearest to it by vector are found too, and the
// score is the reciprocal rank fusion of both rankings (see RRFK): the sum
// of 1/(RRFK + rank) over the rankings a memory is in.
func (r *Reader) SearchMemories(ctx context.Context, userID, query string, embedding []float32, f MemoryFilter, limit int) ([]MemoryHit, error) {
	if limit <= 0 || limit > maxLimit {
		limit = defaultLimit
	}
	f.Q = ""
	if embedding != nil {
		return r.searchFused(ctx, userID, query, embedding, f, limit)
	}
	cond, args := f.where([]any{userID, query, limit})
	rows, err := r.db.Query(ctx, `SELECT `+memoryCols+`, ts_rank_cd(search, q) AS score
		FROM memories, websearch_to_tsquery('english', $2) q
		WHERE user_id = $1 AND search @@ q AND `+cond+`
		ORDER BY score DESC, id DESC LIMIT $3`, args...)
	return scanHits(rows, err, "search memories")
}

// scanHits reads memories each followed by a score.
func scanHits(rows pgx.Rows, err error, what string) ([]MemoryHit, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	var out []MemoryHit
	for rows.Next() {
		var h MemoryHit
		m := &h.Memory
		if err := rows.Scan(&m.ID, &m.UserID, &m.Type, &m.Content, &m.Importance, &m.Tags, &m.Metadata, &m.SourceSessionID,
			&m.SourceMessageID, &m.Tokens, &m.ExpiresAt, &m.EmbeddingDim, &m.Version, &m.CreatedAt, &m.UpdatedAt, &h.Score); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

package readmodel

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RRFK is the k of reciprocal rank fusion: a memory at rank r (from 1) of
// the full-text ranking or of the vector ranking gains 1/(RRFK + r), and
// its relevance is the sum over both. A large k lets agreement between the
// lists count for more than the top place of one of them.
const RRFK = 60

// Bounds of the vector ranking. Embeddings are plain real[] (no pgvector,
// so no vector index): a query's embedding is compared with each of the
// user's memories that has one of the same dimension, at most
// maxVectorScan of them (the most recently updated), and the nearest
// maxVectorRanked enter the fusion.
const (
	maxVectorScan   = 5000
	maxVectorRanked = 200
)

// vectorScope is what a vector ranking takes its candidates from: the
// user's memories with an embedding of the query's length that pass a
// filter, at most maxVectorScan of them (the most recently updated), and
// more (memories as they were, put back by a pastItems), by id.
//
// The filter has two forms of the same meaning: cond, an SQL condition
// over args (whose first is the user id), for reading the candidates out
// of the table, and keep, over what the VectorCache holds, for reading
// them from memory. A filter only Postgres can apply (a search's tags,
// metadata, ...) sets ids: keep then takes the memories whose ids
// Postgres lists for cond.
type vectorScope struct {
	userID string
	cond   string
	args   []any
	keep   func(*vecItem) bool
	ids    bool
	more   map[string][]float32
	// approximate lets a large scan rank approximately (see approxAbove).
	approximate bool
}

// nearestAmong ranks the memories of vs by cosine similarity to q,
// nearest first: the first maxVectorRanked ids. Memories whose embedding
// has another length than q never match.
//
// The similarity is computed here, not in SQL: an SQL function summing
// over unnest() of two float4 arrays took about 4 times as long as
// reading the same arrays into Go and computing there (for 1000 vectors of
// 1536 dimensions, ~300 ms against ~75 ms, nearly all of it transferring
// the arrays). With a VectorCache the arrays are read once per change of
// the user's memories, not once per query.
func (r *Reader) nearestAmong(ctx context.Context, q []float32, vs vectorScope) ([]string, error) {
	qn := norm(q)
	if len(q) == 0 || qn == 0 {
		return nil, nil
	}
	if r.vectors == nil {
		return r.nearestInTable(ctx, q, qn, vs)
	}
	v, err := r.vectorsOf(ctx, vs.userID)
	if err != nil {
		return nil, err
	}
	var listed map[string]bool
	if vs.ids {
		if listed, err = r.embeddedIDs(ctx, len(q), vs); err != nil {
			return nil, err
		}
	}
	return v.nearest(q, qn, vs, listed), nil
}

// nearest ranks the memories of v that vs keeps (and listed names, when
// not nil) by cosine similarity to q (of norm qn).
func (v *userVectors) nearest(q []float32, qn float64, vs vectorScope, listed map[string]bool) []string {
	var cands []*vecItem
	scanned := 0
	for i := range v.items {
		it := &v.items[i]
		if len(it.emb) != len(q) || (listed != nil && !listed[it.id]) || (vs.keep != nil && !vs.keep(it)) {
			continue
		}
		if scanned++; scanned > maxVectorScan {
			break
		}
		if it.norm != 0 {
			cands = append(cands, it)
		}
	}
	return rankVectors(q, qn, cands, vs.more, vs.approximate)
}

// embeddedIDs lists the memories of vs's condition with an embedding of
// dim numbers.
func (r *Reader) embeddedIDs(ctx context.Context, dim int, vs vectorScope) (map[string]bool, error) {
	args := append(slices.Clip(vs.args), dim)
	rows, err := r.db.Query(ctx, `SELECT id FROM memories
		WHERE user_id = $1 AND embedding_dim = $`+strconv.Itoa(len(args))+` AND `+vs.cond, args...)
	if err != nil {
		return nil, fmt.Errorf("list embedded memories: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list embedded memories: %w", err)
	}
	out := make(map[string]bool, len(ids))
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// nearestInTable is nearestAmong reading the embeddings out of the table.
func (r *Reader) nearestInTable(ctx context.Context, q []float32, qn float64, vs vectorScope) ([]string, error) {
	args := append(slices.Clip(vs.args), len(q), maxVectorScan)
	dim, limit := "$"+strconv.Itoa(len(args)-1), "$"+strconv.Itoa(len(args))
	rows, err := r.db.Query(ctx, `SELECT id, embedding FROM memories
		WHERE user_id = $1 AND embedding_dim = `+dim+` AND `+vs.cond+`
		ORDER BY updated_at DESC LIMIT `+limit, args...)
	if err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	defer rows.Close()
	var all []scored
	var id string
	var e []float32
	for rows.Next() {
		if err := rows.Scan(&id, &e); err != nil {
			return nil, fmt.Errorf("read embeddings: %w", err)
		}
		if sim, ok := cosine(q, qn, e); ok {
			all = append(all, scored{id, sim})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read embeddings: %w", err)
	}
	for id, e := range vs.more {
		if sim, ok := cosine(q, qn, e); ok {
			all = append(all, scored{id, sim})
		}
	}
	return topIDs(all), nil
}

// cosine is the cosine similarity of q (of norm qn) and e; ok is false when
// it is undefined (other length, zero vector).
func cosine(q []float32, qn float64, e []float32) (float64, bool) {
	if len(e) != len(q) {
		return 0, false
	}
	var dot, ee float64
	for i, x := range e {
		dot += float64(x) * float64(q[i])
		ee += float64(x) * float64(x)
	}
	if ee == 0 {
		return 0, false
	}
	return dot / (qn * math.Sqrt(ee)), true
}

// searchFusedSQL ranks the full-text matches of $2 and the vector ranking
// $3 (ids, nearest first) by reciprocal rank fusion; the score is the sum.
// At most $6 full-text matches count; filters follow from $7.
const searchFusedSQL = `WITH txt AS (
		SELECT id, row_number() OVER (ORDER BY ts_rank_cd(search, q) DESC, id DESC) AS rank
		FROM memories, websearch_to_tsquery('english', $2) q
		WHERE user_id = $1 AND search @@ q AND %s
		ORDER BY rank LIMIT $6),
	vec AS (SELECT id, rank FROM unnest($3::text[]) WITH ORDINALITY AS v(id, rank)),
	fused AS (SELECT coalesce(t.id, v.id) AS id,
			coalesce(1.0::float8 / ($4::int + t.rank), 0) + coalesce(1.0::float8 / ($4::int + v.rank), 0) AS score
		FROM txt t FULL JOIN vec v ON v.id = t.id)
	SELECT ` + memoryCols + `, f.score
	FROM fused f JOIN memories USING (id)
	WHERE ` + live + `
	ORDER BY f.score DESC, id DESC LIMIT $5`

// searchFused is SearchMemories with a query embedding.
func (r *Reader) searchFused(ctx context.Context, userID, query string, embedding []float32, f MemoryFilter, limit int) ([]MemoryHit, error) {
	vcond, vargs := f.where([]any{userID})
	vs := vectorScope{userID: userID, cond: vcond, args: vargs, approximate: true}
	if f.onlyLive() {
		now := time.Now()
		vs.keep = func(it *vecItem) bool { return it.expiresAt == nil || it.expiresAt.After(now) }
	} else {
		vs.ids = true
	}
	if hits, ok, err := r.searchCached(ctx, query, embedding, f, vs, limit); ok || err != nil {
		return hits, err
	}
	near, err := r.nearestAmong(ctx, embedding, vs)
	if err != nil {
		return nil, err
	}
	sql, args := searchRankedSQL(userID, query, near, f, limit)
	rows, err := r.db.Query(ctx, sql, args...)
	return scanHits(rows, err, "search memories")
}

// searchCached is searchFused from the vectors the cache holds of the
// user, when it holds some and the filter is one Go applies: ranked before
// asking Postgres anything, then the generation is read and the search
// sent in one round trip. ok is false when the generation moved since the
// vectors were read (the search is then thrown away), or nothing was
// cached.
func (r *Reader) searchCached(ctx context.Context, query string, q []float32, f MemoryFilter, vs vectorScope, limit int) (hits []MemoryHit, ok bool, err error) {
	qn := norm(q)
	if r.vectors == nil || vs.ids || len(q) == 0 || qn == 0 {
		return nil, false, nil
	}
	v, found := r.vectors.entries.GetIfPresent(vs.userID)
	if !found {
		return nil, false, nil
	}
	sql, args := searchRankedSQL(vs.userID, query, v.nearest(q, qn, vs, nil), f, limit)
	var g generation
	var b pgx.Batch
	b.Queue(generationSQL, "user:"+vs.userID).QueryRow(func(row pgx.Row) error { return row.Scan(&g.user, &g.rebuilds) })
	b.Queue(sql, args...).Query(func(rows pgx.Rows) error {
		hits, err = scanHits(rows, nil, "search memories")
		return err
	})
	if err := r.db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, false, fmt.Errorf("search memories: %w", err)
	}
	return hits, g == v.gen, nil
}

// searchRankedSQL is the search of query fused with the vector ranking
// near, filtered by f.
func searchRankedSQL(userID, query string, near []string, f MemoryFilter, limit int) (string, []any) {
	if strings.TrimSpace(query) == "" {
		return searchNearestSQL, []any{near, RRFK, limit}
	}
	cond, args := f.where([]any{userID, query, near, RRFK, limit, maxTextCandidates})
	return fmt.Sprintf(searchFusedSQL, cond), args
}

// searchNearestSQL is searchFusedSQL without a text ($1: the vector
// ranking): every score is 1/($2 + rank), so the order is the ranking's,
// and only the first $3 still live are read (where searchFusedSQL joins
// every one it ranks). The filters were applied to the ranking.
const searchNearestSQL = `SELECT ` + memoryCols + `, 1.0::float8 / ($2::int + v.rank) AS score
	FROM unnest($1::text[]) WITH ORDINALITY AS v(vid, rank)
	CROSS JOIN LATERAL (SELECT ` + memoryCols + ` FROM memories WHERE id = v.vid AND ` + live + `) m
	ORDER BY v.rank LIMIT $3`

// windowCandidates are the memories a context window ranks: full-text
// matches of $2 (any of its words), the most important, the most recent
// and (in relevantFusedSQL) the nearest by vector, among the user's ($1)
// memories live at $7 and, when $10 is not null, stored by then, and,
// when $11 is not null, stored at or before $11.$12 in the log.
const (
	windowLive = `(expires_at IS NULL OR expires_at > $7) AND ($10::timestamptz IS NULL OR created_at <= $10)
		AND ($11::xid8 IS NULL OR (stored_tx, stored_position) <= ($11::xid8, $12::bigint))`
	windowCandidates = `
		(SELECT ` + memoryCols + `, ts_rank_cd(search, arq_any_words($2)) AS text_rank, true AS matched
			FROM memories WHERE user_id = $1 AND search @@ arq_any_words($2) AND ` + windowLive + ` LIMIT $9)
		UNION ALL
		(SELECT ` + memoryCols + `, ` + rankIfMatched + `, coalesce(search @@ arq_any_words($2), false)
			FROM memories WHERE user_id = $1 AND ` + windowLive + ` ORDER BY importance DESC LIMIT $8)
		UNION ALL
		(SELECT ` + memoryCols + `, ` + rankIfMatched + `, coalesce(search @@ arq_any_words($2), false)
			FROM memories WHERE user_id = $1 AND ` + windowLive + ` ORDER BY updated_at DESC LIMIT $8)`
	// rankIfMatched is the full-text rank of a candidate that may not
	// match: ts_rank_cd is 0 for a memory with none of the words, so it is
	// computed only for one that has some (it costs microseconds a row,
	// and the important and recent lists are mostly rows that do not
	// match). For a text with no words it is 0 where ts_rank_cd is NULL:
	// the ranking counts both as 0.
	rankIfMatched = `CASE WHEN search @@ arq_any_words($2) THEN ts_rank_cd(search, arq_any_words($2)) ELSE 0 END`
)

// relevantFusedSQL is relevantSQL with a vector ranking ($13, ids nearest
// first): the text term is the reciprocal rank fusion (k = $14) of the
// full-text ranking among the candidates and the vector ranking, relative
// to the best candidate's, weighed with importance and recency as before.
const relevantFusedSQL = `WITH cand AS (` + windowCandidates + `
		UNION ALL
		(SELECT ` + memoryCols + `, ts_rank_cd(search, arq_any_words($2)), coalesce(search @@ arq_any_words($2), false)
			FROM memories WHERE id = ANY ($13::text[]) AND user_id = $1 AND ` + windowLive + `)),
	uniq AS (SELECT DISTINCT ON (id) * FROM cand),
	ranked AS (SELECT u.*,
			CASE WHEN matched THEN row_number() OVER (PARTITION BY matched ORDER BY text_rank DESC, id DESC) END AS text_pos,
			v.rank AS vec_pos
		FROM uniq u LEFT JOIN unnest($13::text[]) WITH ORDINALITY AS v(vid, rank) ON v.vid = u.id),
	fused AS (SELECT *, coalesce(1.0::float8 / ($14::int + text_pos), 0) + coalesce(1.0::float8 / ($14::int + vec_pos), 0) AS rel
		FROM ranked)
	SELECT ` + memoryCols + `,
		$3::float8 * coalesce(rel / nullif(max(rel) OVER (), 0), 0)
		+ ` + importanceRecencySQL + ` AS score
	FROM fused
	ORDER BY score DESC, id DESC LIMIT $8`

// relevantFused is RelevantMemories with a query embedding. When no
// memory has an embedding of its length, it ranks as without one.
func (r *Reader) relevantFused(ctx context.Context, userID, text string, embedding []float32, sc memoryScope, limit int, past *pastItems) ([]MemoryHit, bool, error) {
	tx, pos := sc.storedArgs()
	cond, args := past.otherMemories(`(expires_at IS NULL OR expires_at > $2) AND ($3::timestamptz IS NULL OR created_at <= $3)
			AND ($4::xid8 IS NULL OR (stored_tx, stored_position) <= ($4::xid8, $5::bigint))`,
		[]any{userID, sc.now, sc.createdBefore, tx, pos})
	near, err := r.nearestAmong(ctx, embedding, vectorScope{userID: userID, cond: cond, args: args,
		keep: sc.keeps(past), more: past.memoryEmbeddings(sc.now, sc.createdBefore)})
	if err != nil || len(near) == 0 {
		return nil, false, err
	}
	sql, args := past.overMemories(relevantFusedSQL,
		[]any{userID, text, WeightText, WeightImportance, WeightRecency, RecencyHalfLife.Seconds(), sc.now, limit, maxTextCandidates, sc.createdBefore, tx, pos, near, RRFK})
	rows, err := r.db.Query(ctx, sql, args...)
	hits, err := scanHits(rows, err, "rank memories")
	return hits, true, err
}

// latestUserMessage is the content and embedding of the session's latest
// user message with a sequence number below beforeSeq (0: any); "" and
// nil when there is none.
func (r *Reader) latestUserMessage(ctx context.Context, sessionID string, beforeSeq int, past *pastItems) (text string, embedding []float32, err error) {
	sql, args := past.overMessages(`SELECT content, embedding FROM messages
		WHERE session_id = $1 AND role = 'user' AND ($2 = 0 OR seq < $2) ORDER BY seq DESC LIMIT 1`, []any{sessionID, beforeSeq})
	err = r.db.QueryRow(ctx, sql, args...).Scan(&text, &embedding)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("read latest user message: %w", err)
	}
	return text, embedding, nil
}

// messageEmbedding is a message's embedding; nil without one.
func (r *Reader) messageEmbedding(ctx context.Context, id string, past *pastItems) ([]float32, error) {
	if e, ok := past.messageEmbedding(id); ok {
		return e, nil
	}
	var e []float32
	err := r.db.QueryRow(ctx, `SELECT embedding FROM messages WHERE id = $1`, id).Scan(&e)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("read embedding of message %s: %w", id, err)
	}
	return e, nil
}

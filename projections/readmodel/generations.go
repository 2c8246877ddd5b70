package readmodel

import (
	"slices"

	"github.com/arq-memory/arq/projections"
)

// bumpSQL moves the generation of the key a query selects; see
// migrations/00008_cache_generations.sql.
const bumpSQL = ` ON CONFLICT (key) DO UPDATE SET gen = cache_generations.gen + 1`

// bumpSummary moves the generation of a session's summaries. (Each key
// has one projection that bumps it, so projections never wait on each
// other's rows.)
func bumpSummary(tx projections.Tx, sessionID string) { bump(tx, "summary:"+sessionID) }

// bumpSession moves the generation of a session's messages.
func bumpSession(tx projections.Tx, sessionID string) { bump(tx, "session:"+sessionID) }

// bumpSessionOfMessage moves the generation of a message's session; it
// must come before the message's row goes.
func bumpSessionOfMessage(tx projections.Tx, messageID string) {
	tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT 'session:' || session_id, 1 FROM messages WHERE id = $1`+bumpSQL, messageID)
}

// bumpUser moves the generation of a user's memories.
func bumpUser(tx projections.Tx, userID string) { bump(tx, "user:"+userID) }

// bumpUserOfMemory moves the generation of a memory's user; it must come
// before the memory's row goes.
func bumpUserOfMemory(tx projections.Tx, memoryID string) {
	tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT 'user:' || user_id, 1 FROM memories WHERE id = $1`+bumpSQL, memoryID)
}

// bump moves the generation of key once in the current unit of writes,
// however many of its events ask: the keys gather in one Coalescer, so a
// batch that changes many sessions moves their generations in one
// statement, and the writes around it still merge.
func bump(tx projections.Tx, key string) {
	tx.Coalesce("cache_generations", newGenerationBumps).(*generationBumps).add(key)
}

// generationBumps gathers the keys whose generation a unit of writes
// moves.
type generationBumps struct {
	keys  []string
	moved map[string]bool // in this unit, flushed or not
}

func newGenerationBumps() projections.Coalescer {
	return &generationBumps{moved: map[string]bool{}}
}

func (b *generationBumps) add(key string) {
	if !b.moved[key] {
		b.moved[key] = true
		b.keys = append(b.keys, key)
	}
}

// Flush moves every gathered key's generation, in key order, so that two
// transactions moving the same keys take their row locks in one order.
func (b *generationBumps) Flush(exec func(sql string, args ...any)) {
	if len(b.keys) == 0 {
		return
	}
	slices.Sort(b.keys)
	exec(`INSERT INTO cache_generations (key, gen) SELECT k, 1 FROM unnest($1::text[]) AS k`+bumpSQL, b.keys)
	b.keys = nil // the queued statement keeps the slice until sent
}

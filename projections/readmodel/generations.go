package readmodel

import "github.com/arq-memory/arq/projections"

// bumpSQL moves the generation of the key a query selects; see
// migrations/00008_cache_generations.sql.
const bumpSQL = ` ON CONFLICT (key) DO UPDATE SET gen = cache_generations.gen + 1`

// bumpSummary moves the generation of a session's summaries. (Each key
// has one projection that bumps it, so projections never wait on each
// other's rows.)
func bumpSummary(tx projections.Tx, sessionID string) {
	tx.ExecOnce("summary:"+sessionID, `INSERT INTO cache_generations (key, gen) VALUES ('summary:' || $1, 1)`+bumpSQL, sessionID)
}

// bumpSession moves the generation of a session's messages.
func bumpSession(tx projections.Tx, sessionID string) {
	tx.ExecOnce("session:"+sessionID, `INSERT INTO cache_generations (key, gen) VALUES ('session:' || $1, 1)`+bumpSQL, sessionID)
}

// bumpSessionOfMessage moves the generation of a message's session; it
// must come before the message's row goes.
func bumpSessionOfMessage(tx projections.Tx, messageID string) {
	tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT 'session:' || session_id, 1 FROM messages WHERE id = $1`+bumpSQL, messageID)
}

// bumpUser moves the generation of a user's memories.
func bumpUser(tx projections.Tx, userID string) {
	tx.ExecOnce("user:"+userID, `INSERT INTO cache_generations (key, gen) VALUES ('user:' || $1, 1)`+bumpSQL, userID)
}

// bumpUserOfMemory moves the generation of a memory's user; it must come
// before the memory's row goes.
func bumpUserOfMemory(tx projections.Tx, memoryID string) {
	tx.Exec(`INSERT INTO cache_generations (key, gen) SELECT 'user:' || user_id, 1 FROM memories WHERE id = $1`+bumpSQL, memoryID)
}

package app

import (
	"context"
	"time"

	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/idempotency"
	"github.com/arq-memory/arq/projections/readmodel"
)

// answerEraser forgets the idempotent answers of erased requests for the
// commands (commands.AnswerEraser over idempotency.Store).
type answerEraser struct{ s *idempotency.Store }

func (a answerEraser) EraseAnswers(ctx context.Context, scope commands.AnswerScope) (int64, error) {
	return a.s.Erase(ctx, idempotency.Erasure{Streams: scope.Streams, EventIDs: scope.EventIDs,
		Owner: scope.Owner, Actor: scope.Actor, Key: scope.Key})
}

// Eraser erases users, messages and memories to the end (see
// commands.Eraser). A server's waits as long as its commands wait for the
// projections (ARQ_READ_YOUR_WRITES_TIMEOUT) and clears its cache; a
// process without the server part (the command line) gets one that waits
// up to wait, for projections that may run elsewhere, and clears the
// deployment's cache in Redis, which it connects to on first use. It
// needs PartCommands.
func (a *App) Eraser(ctx context.Context, wait time.Duration) (*commands.Eraser, error) {
	if a.eraser != nil {
		return a.eraser, nil
	}
	namespace, err := a.redisNamespace(ctx, a.pool.Config().ConnConfig.Database)
	if err != nil {
		return nil, err
	}
	if a.cache == nil {
		// Nothing kept in memory: this process reads nothing through it.
		if a.cache, err = cache.New(a.cfg.RedisURL, 0, a.log); err != nil {
			return nil, err
		}
	}
	a.eraser = commands.NewEraser(a.commands, a.waiter, cache.NewForgetter(a.cache, namespace), wait)
	return a.eraser, nil
}

// forgetters forgets erased entities in the Redis cache (and the entries
// this process keeps in front of it) and in the embeddings this process
// keeps for vector rankings (nil: none): an erased user's or memory's
// vectors are dropped from memory at once, not only left unused.
type forgetters struct {
	cache   *cache.Forgetter
	vectors *readmodel.VectorCache
}

func (f forgetters) ForgetErased(ctx context.Context, e commands.Erased) error {
	f.vectors.Forget(e.Users, e.Memories)
	return f.cache.ForgetErased(ctx, e)
}

package commands

import (
	"context"
	"sync"
)

// streamLocks serializes the commands of one process on one stream. Two
// commands on the same entity that load it together both decide on the
// same version, and all but one lose the append and go round again: with
// a few dozen at once, most lose many times. Held from the load to the
// append, a stream's lock leaves the optimistic check to writers in other
// processes. Only a stream's own commands take its lock, never a guard's,
// and none takes two: locks cannot deadlock.
type streamLocks struct {
	mu    sync.Mutex
	locks map[string]*streamLock
}

type streamLock struct {
	held  chan struct{} // holds a token while the lock is held
	users int           // commands holding or awaiting it
}

func newStreamLocks() *streamLocks {
	return &streamLocks{locks: map[string]*streamLock{}}
}

// lock waits until the process runs no other command on streamID, or ctx
// ends; on success, unlock must be called once the command is done.
func (l *streamLocks) lock(ctx context.Context, streamID string) (unlock func(), err error) {
	l.mu.Lock()
	sl, ok := l.locks[streamID]
	if !ok {
		sl = &streamLock{held: make(chan struct{}, 1)}
		l.locks[streamID] = sl
	}
	sl.users++
	l.mu.Unlock()
	select {
	case sl.held <- struct{}{}:
		return func() {
			<-sl.held
			l.release(streamID, sl)
		}, nil
	case <-ctx.Done():
		l.release(streamID, sl)
		return nil, ctx.Err()
	}
}

// release drops a holder or waiter of sl, and sl itself after the last.
func (l *streamLocks) release(streamID string, sl *streamLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl.users--; sl.users == 0 {
		delete(l.locks, streamID)
	}
}

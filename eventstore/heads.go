package eventstore

import (
	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultHeadCache is how many stream heads a Store remembers by default
// (about 150 bytes each).
const DefaultHeadCache = 16384

// head is a stream's last event as this process appended it: its version,
// the stream's type and the event's hash, the three things an append reads
// from the stream before it writes.
type head struct {
	version int
	typ     string
	hash    []byte
}

// heads remembers the heads of streams this Store appended to, so that the
// next append to such a stream writes without reading the stream first.
//
// A remembered head can only be behind the log, never wrong: events are
// never changed or removed, so version v of a stream keeps its hash for
// good. An append from a remembered head computes version v+1; if another
// writer got there first, the insert collides on the stream's unique
// (stream_id, version) key and the append is explained and retried from
// the log, exactly as when two writers race on a read head. A nil *heads
// remembers nothing.
type heads struct {
	c *lru.Cache[string, head]
}

func newHeads(size int) (*heads, error) {
	if size <= 0 {
		return nil, nil
	}
	c, err := lru.New[string, head](size)
	if err != nil {
		return nil, err
	}
	return &heads{c: c}, nil
}

// known returns the head an append of a may start from: the remembered one
// if it matches a's stream type and expected version, or, for a stream a
// expects not to exist, the empty head. ok is false when the append must
// read the stream.
func (h *heads) known(a appendArgs) (hd head, ok bool) {
	if a.expected.v == 0 {
		// A new stream's head is known without asking: if the stream exists
		// after all, version 1 collides and explain says why.
		return head{typ: a.streamType}, true
	}
	if h == nil {
		return head{}, false
	}
	hd, ok = h.c.Get(a.streamID)
	if !ok || hd.typ != a.streamType || (a.expected.v > 0 && int64(hd.version) != a.expected.v) {
		return head{}, false
	}
	return hd, true
}

// remember records a stream's head after an append committed.
func (h *heads) remember(streamID string, hd head) {
	if h == nil || len(hd.hash) == 0 {
		return
	}
	h.c.Add(streamID, hd)
}

// forget drops a stream's head, after an append from it lost a race.
func (h *heads) forget(streamID string) {
	if h == nil {
		return
	}
	h.c.Remove(streamID)
}

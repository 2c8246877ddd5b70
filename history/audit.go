package history

import (
	"context"
	"fmt"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
)

// Audit is a page of the events that touched a user or anything of theirs
// (their own stream, sessions, messages, memories, summaries, snapshots
// and claims of external ids), in log order: at most limit of them after
// cursor after. f narrows the page as it narrows eventstore.ReadAll (event
// types, stream, stream type, time); its Streams, SharedType and Owner are
// Audit's own and are overwritten. A user who never had an event is no
// user (domain.ErrNotFound); one whose events f leaves out has an empty
// audit. The API's audit of a user and `arq audit user` both read it.
func (r *Reader) Audit(ctx context.Context, userID string, f eventstore.Filter, after eventstore.Cursor, limit int) ([]eventstore.Recorded, error) {
	streams, err := r.store.UserStreams(ctx, userID)
	if err != nil {
		return nil, err
	}
	if len(streams) <= 1 { // only the user's own stream id, which it may never have had
		v, err := r.store.StreamVersion(ctx, domain.KindUser.StreamID(userID))
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, fmt.Errorf("%w: user %s", domain.ErrNotFound, userID)
		}
	}
	// An external id's claims stream is shared by the users that held it
	// in turn: only this user's claims and releases are theirs.
	f.Streams, f.SharedType, f.Owner = streams, domain.StreamExternalID, userID
	events, err := r.store.ReadAll(ctx, after, limit, f)
	if err != nil {
		return nil, fmt.Errorf("audit user %s: %w", userID, err)
	}
	return events, nil
}

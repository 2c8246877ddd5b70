package main

import (
	"context"
	"time"

	"github.com/arq-memory/arq/projections/readmodel"
)

// messageFinder finds a message's session and sequence number in the read
// model, for commands on an existing message.
type messageFinder struct{ r *readmodel.Reader }

func (f messageFinder) FindMessage(ctx context.Context, id string) (string, int, error) {
	m, err := f.r.GetMessage(ctx, id)
	if err != nil {
		return "", 0, err
	}
	return m.SessionID, m.Seq, nil
}

// dueFinder lists due expiries from the read model for the expiry worker.
type dueFinder struct{ r *readmodel.Reader }

func (f dueFinder) DueSessions(ctx context.Context, now time.Time, limit int) ([]string, error) {
	due, err := f.r.ExpiredSessions(ctx, now, limit)
	return ids(due), err
}

func (f dueFinder) DueMemories(ctx context.Context, now time.Time, limit int) ([]string, error) {
	due, err := f.r.ExpiredMemories(ctx, now, limit)
	return ids(due), err
}

func ids(due []readmodel.ExpiryDue) []string {
	out := make([]string, len(due))
	for i, d := range due {
		out[i] = d.ID
	}
	return out
}

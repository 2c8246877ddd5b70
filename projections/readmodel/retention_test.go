package readmodel_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/projections/readmodel"
)

// Retention finds every message of the log not erased yet, also one
// redacted or of a deleted user, which have left the messages table; not
// one erased, nor one of an erased user.
func TestMessagesBeforeReadsTheLog(t *testing.T) {
	t.Parallel()
	l := newSealedLog(t)
	msg := func(user, session, id string) {
		l.add(domain.StreamMessageLog, session, domain.MessageAppended, domain.MessageAppendedData{
			MessageID: id, SessionID: session, UserID: user, Role: "user", Content: "text " + id, Tokens: 2})
	}
	msg("u1", "s1", "kept")
	msg("u1", "s1", "redacted")
	l.add(domain.StreamMessage, "redacted", domain.MessageRedacted, domain.MessageRedactedData{})
	msg("u1", "s1", "erased")
	l.add(domain.StreamMessage, "erased", domain.MessageErased, domain.MessageErasedData{SessionID: "s1", UserID: "u1", Seq: 3})
	msg("u2", "s2", "of-deleted")
	l.add(domain.StreamUser, "u2", domain.UserDeleted, domain.UserDeletedData{})
	msg("u3", "s3", "of-erased")
	l.add(domain.StreamUser, "u3", domain.UserErased, domain.UserErasedData{})

	r := readmodel.NewReader(l.pool)
	got, err := r.MessagesBefore(context.Background(), time.Now().Add(time.Minute), 10, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kept", "redacted", "of-deleted"}; !slices.Equal(got, want) {
		t.Fatalf("due %v, want %v", got, want)
	}
	if got, _ := r.MessagesBefore(context.Background(), time.Now().Add(-time.Hour), 10, nil, nil); len(got) != 0 {
		t.Fatalf("due an hour ago: %v", got)
	}
	got, _ = r.MessagesBefore(context.Background(), time.Now().Add(time.Minute), 10, []string{"redacted"}, []string{"kept"})
	if want := []string{"of-deleted", "kept"}; !slices.Equal(got, want) {
		t.Fatalf("skipping redacted, kept last: %v, want %v", got, want)
	}
}

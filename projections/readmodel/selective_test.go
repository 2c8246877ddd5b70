package readmodel_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
	"github.com/arq-memory/arq/projections/readmodel"
)

// allTypes is every event type the domain writes.
var allTypes = []string{
	domain.UserRegistered, domain.UserProfileUpdated, domain.UserDeleted,
	domain.ExternalIDClaimed, domain.ExternalIDReleased,
	domain.SessionStarted, domain.SessionExtended, domain.SessionClosed, domain.SessionExpired,
	domain.MessageAppended, domain.MessageEdited, domain.MessageRedacted,
	domain.MemoryStored, domain.MemoryUpdated, domain.MemoryDeleted, domain.MemoryExpired, domain.MemorySuperseded,
	domain.SessionSummarized, domain.ContextSnapshotRecorded, domain.SessionExtracted,
	domain.UserErased, domain.MessageErased, domain.MemoryErased,
}

// touchTx records whether Apply wrote or read anything.
type touchTx struct{ touched []string }

func (t *touchTx) Exec(sql string, _ ...any) { t.touched = append(t.touched, sql) }
func (t *touchTx) Coalesce(key string, create func() projections.Coalescer) projections.Coalescer {
	t.touched = append(t.touched, "coalesce "+key)
	return create() // what the projection asserts it to, so a slip fails as a report
}
func (t *touchTx) Query(_ context.Context, sql string, _ ...any) (pgx.Rows, error) {
	t.touched = append(t.touched, sql)
	return nil, errors.New("no reads here")
}
func (t *touchTx) QueryRow(_ context.Context, sql string, _ ...any) pgx.Row {
	t.touched = append(t.touched, sql)
	return nil
}

// The engine skips, in SQL, the events a Selective projection does not
// list, and hands it one of them now and then to move its checkpoint: so
// Apply must act on no type it leaves out, or a rebuild would apply some
// of those events and skip others.
func TestEveryProjectionListsEveryTypeItApplies(t *testing.T) {
	for _, p := range readmodel.All() {
		s, ok := p.(projections.Selective)
		if !ok {
			t.Errorf("%s is not Selective", p.Name())
			continue
		}
		listed := s.EventTypes()
		for _, typ := range listed {
			if !slices.Contains(allTypes, typ) {
				t.Errorf("%s lists %q, which the domain does not write", p.Name(), typ)
			}
		}
		for _, typ := range append(slices.Clone(allTypes), "unknown.type") {
			if slices.Contains(listed, typ) {
				continue
			}
			tx := &touchTx{}
			e := eventstore.Recorded{Type: typ, SchemaVersion: 1, StreamID: "x-1", StreamType: "x", Version: 1, Data: []byte(`{}`)}
			if err := p.Apply(context.Background(), tx, e); err != nil {
				t.Errorf("%s: Apply(%s) = %v", p.Name(), typ, err)
			}
			if len(tx.touched) > 0 {
				t.Errorf("%s acts on %s but does not list it: %v", p.Name(), typ, tx.touched)
			}
		}
	}
}

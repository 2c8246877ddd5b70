// Package readmodel holds the query tables of the memory API (users,
// sessions, messages, memories): the projections that build them from the
// event log, and the Reader the API reads them through.
package readmodel

import (
	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// All returns the memory API's projections, in the order their status is
// shown.
func All() []projections.Projection {
	return []projections.Projection{Users{}, Sessions{}, Messages{}, Memories{}, Context{}, Extractions{}, Provenance{}}
}

// entityID is the id of the entity whose stream an event is in:
// "memory-01J..." gives "01J...". A stream id the domain does not name
// gives "", which no row has.
func entityID(e eventstore.Recorded) string {
	_, id, err := domain.ParseStreamID(e.StreamID)
	if err != nil {
		return ""
	}
	return id
}

// decode turns a recorded event into the domain's event; the types a
// projection ignores are never decoded.
func decode(e eventstore.Recorded) (domain.Event, error) {
	return domain.DecodeEvent(e.Type, e.SchemaVersion, e.Data)
}

package domain

import (
	"encoding/json"
	"fmt"
)

// Events change shape over time; the log keeps every event in the shape it
// was written in, with its schema version. Upcasters turn an older shape
// into the next, one version at a time, when an event is read, so that the
// rest of ARQ (aggregates, projections, history, replay) only ever sees
// the current shape.
//
// upcasters[type][v-1] turns version v into v+1. An event type with none
// is at version 1. To change an event: bump its shape, and add the
// upcaster from the old version here.
var upcasters = map[string][]func(map[string]any) error{
	// Version 2 groups where a memory came from under "source".
	MemoryStored: {func(d map[string]any) error {
		src := map[string]any{}
		for old, key := range map[string]string{"source_session_id": "session_id", "source_message_id": "message_id"} {
			if v, ok := d[old]; ok {
				if s, _ := v.(string); s != "" {
					src[key] = s
				}
				delete(d, old)
			}
		}
		if len(src) > 0 {
			d["source"] = src
		}
		return nil
	}},
}

// SchemaVersion is the current schema version of an event type: what
// commands write and what DecodeEvent returns.
func SchemaVersion(eventType string) int { return len(upcasters[eventType]) + 1 }

// upcast brings data of eventType from schema version v to the current one.
func upcast(eventType string, v int, data []byte) ([]byte, error) {
	steps := upcasters[eventType]
	if v < 1 {
		v = 1
	}
	if v > len(steps)+1 {
		return nil, fmt.Errorf("%w: %s schema version %d is newer than this ARQ knows (%d)", ErrInvalid, eventType, v, len(steps)+1)
	}
	if v == len(steps)+1 {
		return data, nil
	}
	var d map[string]any
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("upcast %s from version %d: %w", eventType, v, err)
	}
	for ; v <= len(steps); v++ {
		if err := steps[v-1](d); err != nil {
			return nil, fmt.Errorf("upcast %s from version %d: %w", eventType, v, err)
		}
	}
	return json.Marshal(d)
}

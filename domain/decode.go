package domain

import (
	"encoding/json"
	"fmt"
)

// DecodeEvent decodes a stored event's JSON data by its type into the
// matching *Data struct (as a value, not a pointer), first bringing data
// written in an older schema version to the current one (see upcast.go).
func DecodeEvent(eventType string, schemaVersion int, data []byte) (Event, error) {
	data, err := upcast(eventType, schemaVersion, data)
	if err != nil {
		return Event{}, err
	}
	var out any
	switch eventType {
	case UserRegistered:
		out, err = decodeAs[UserRegisteredData](data)
	case UserProfileUpdated:
		out, err = decodeAs[UserProfileUpdatedData](data)
	case UserDeleted:
		out, err = decodeAs[UserDeletedData](data)
	case ExternalIDClaimed, ExternalIDReleased:
		out, err = decodeAs[ExternalIDData](data)
	case SessionStarted:
		out, err = decodeAs[SessionStartedData](data)
	case SessionExtended:
		out, err = decodeAs[SessionExtendedData](data)
	case SessionClosed:
		out, err = decodeAs[SessionClosedData](data)
	case SessionExpired:
		out, err = decodeAs[SessionExpiredData](data)
	case MessageAppended:
		out, err = decodeAs[MessageAppendedData](data)
	case MessageEdited:
		out, err = decodeAs[MessageEditedData](data)
	case MessageRedacted:
		out, err = decodeAs[MessageRedactedData](data)
	case MemoryStored:
		out, err = decodeAs[MemoryStoredData](data)
	case MemoryUpdated:
		out, err = decodeAs[MemoryUpdatedData](data)
	case MemoryDeleted:
		out, err = decodeAs[MemoryDeletedData](data)
	case MemoryExpired:
		out, err = decodeAs[MemoryExpiredData](data)
	case MemorySuperseded:
		out, err = decodeAs[MemorySupersededData](data)
	case SessionExtracted:
		out, err = decodeAs[SessionExtractedData](data)
	case SessionSummarized:
		out, err = decodeAs[SessionSummarizedData](data)
	case ContextSnapshotRecorded:
		out, err = decodeAs[ContextSnapshotData](data)
	case UserErased:
		out, err = decodeAs[UserErasedData](data)
	case MessageErased:
		out, err = decodeAs[MessageErasedData](data)
	case MemoryErased:
		out, err = decodeAs[MemoryErasedData](data)
	default:
		return Event{}, fmt.Errorf("%w: unknown event type %q", ErrInvalid, eventType)
	}
	if err != nil {
		return Event{}, fmt.Errorf("decode %s: %w", eventType, err)
	}
	return Event{Type: eventType, Data: out}, nil
}

func decodeAs[T any](data []byte) (T, error) {
	var v T
	if len(data) == 0 {
		return v, nil
	}
	err := json.Unmarshal(data, &v)
	return v, err
}

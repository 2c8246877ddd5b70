package ledger

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// EventContent is what an event's hash covers, as the events table holds
// it. Data and Metadata are jsonb's text form (data::text): canonical, so
// the bytes Postgres prints are the bytes the hash covered.
type EventContent struct {
	EventID       string
	StreamID      string
	StreamType    string
	Version       int32
	EventType     string
	SchemaVersion int32
	RecordedAt    time.Time
	Data          []byte
	Metadata      []byte
}

// EventHash computes in Go what arq_event_hash (migrations/00011_hash_chain.sql)
// computes in the database: the hash of an event whose stream predecessor's
// hash is prev (nil for a stream's first event). A check that must not
// trust the database uses this one: whoever can write the events table can
// replace the function too.
func EventHash(prev []byte, e EventContent) [sha256.Size]byte {
	micros := e.RecordedAt.UnixMicro()
	var buf []byte
	buf = appendHashText(buf, prev, hashFields{
		eventID: []byte(e.EventID), streamID: []byte(e.StreamID), streamType: []byte(e.StreamType),
		version: e.Version, eventType: []byte(e.EventType), schema: e.SchemaVersion,
		unixMicros: micros, data: e.Data, metadata: e.Metadata,
	})
	return sha256.Sum256(buf)
}

// hashFields is EventContent as the verifier reads it off the wire:
// bytes, not strings, and the time in microseconds since 1970.
type hashFields struct {
	eventID, streamID, streamType, eventType []byte
	version, schema                          int32
	unixMicros                               int64
	data, metadata                           []byte
}

// appendHashText appends to b the text arq_event_hash hashes: what
// jsonb_build_array(...)::text prints, elements separated by ", ",
// strings escaped as Postgres' escape_json escapes them.
func appendHashText(b, prev []byte, f hashFields) []byte {
	b = append(b, `["`...)
	b = hex.AppendEncode(b, prev)
	b = append(b, `", `...)
	b = appendJSONString(b, f.eventID)
	b = append(b, ", "...)
	b = appendJSONString(b, f.streamID)
	b = append(b, ", "...)
	b = appendJSONString(b, f.streamType)
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(f.version), 10)
	b = append(b, ", "...)
	b = appendJSONString(b, f.eventType)
	b = append(b, ", "...)
	b = strconv.AppendInt(b, int64(f.schema), 10)
	b = append(b, `, "`...)
	b = appendTimestamp(b, f.unixMicros)
	b = append(b, `", `...)
	b = append(b, f.data...)
	b = append(b, ", "...)
	b = append(b, f.metadata...)
	return append(b, ']')
}

// appendJSONString appends s quoted as Postgres quotes a JSON string:
// the two-character escapes for ", \, \b, \f, \n, \r and \t, \u00xx
// (lower-case hex) for the other control characters, every other byte
// as it is.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i, c := range s {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		switch c {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\b':
			b = append(b, `\b`...)
		case '\f':
			b = append(b, `\f`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			const digits = "0123456789abcdef"
			b = append(b, '\\', 'u', '0', '0', digits[c>>4], digits[c&0xf])
		}
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendTimestamp appends a time as to_char(t AT TIME ZONE 'UTC',
// 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') prints it.
func appendTimestamp(b []byte, unixMicros int64) []byte {
	t := time.UnixMicro(unixMicros).UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = appendPadded(b, y, 4)
	b = append(b, '-')
	b = appendPadded(b, int(mo), 2)
	b = append(b, '-')
	b = appendPadded(b, d, 2)
	b = append(b, 'T')
	b = appendPadded(b, h, 2)
	b = append(b, ':')
	b = appendPadded(b, mi, 2)
	b = append(b, ':')
	b = appendPadded(b, s, 2)
	b = append(b, '.')
	b = appendPadded(b, t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

package readmodel

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends w encoded as encoding/json's Marshal encodes it,
// byte for byte, and returns the result. A window is the largest answer
// of a context read on a cache miss (over a hundred messages and memories
// of the same few types), and encoding/json spent a fifth of such a
// read's CPU finding its way through them by reflection. Metadata maps,
// which may hold anything, are encoded by encoding/json itself; any value
// encoding/json refuses (a time outside years 0-9999, a score that is not
// a number) makes AppendJSON answer what Marshal answers.
func (w Window) AppendJSON(b []byte) ([]byte, error) {
	if !w.encodable() {
		out, err := json.Marshal(w)
		return append(b, out...), err
	}
	e := jsonEncoder{b: slices.Grow(b, w.sizeHint())}
	e.raw(`{"session_id":`)
	e.str(w.SessionID)
	e.raw(`,"user_id":`)
	e.str(w.UserID)
	e.raw(`,"query":`)
	e.str(w.Query)
	e.raw(`,"max_tokens":`)
	e.int(w.MaxTokens)
	e.raw(`,"summary_share":`)
	e.float(w.SummaryShare)
	e.raw(`,"memory_share":`)
	e.float(w.MemoryShare)
	e.raw(`,"summary":`)
	if w.Summary == nil {
		e.raw("null")
	} else {
		s := w.Summary
		e.raw(`{"session_id":`)
		e.str(s.SessionID)
		e.raw(`,"version":`)
		e.int(s.Version)
		e.raw(`,"content":`)
		e.str(s.Content)
		e.raw(`,"tokens":`)
		e.int(s.Tokens)
		e.raw(`,"from_seq":`)
		e.int(s.FromSeq)
		e.raw(`,"to_seq":`)
		e.int(s.ToSeq)
		e.raw(`,"method":`)
		e.str(s.Method)
		e.raw(`,"created_at":`)
		e.time(s.CreatedAt)
		e.raw(`,"cost":`)
		e.int(s.Cost)
		e.raw("}")
	}
	e.raw(`,"messages":`)
	appendList(&e, w.Messages, e.message)
	e.raw(`,"memories":`)
	appendList(&e, w.Memories, e.memory)
	e.raw(`,"total_tokens":`)
	e.int(w.TotalTokens)
	e.raw("}")
	return e.b, e.err
}

// sizeHint is about the length of w's JSON, a little more: the fields of
// an item take some 300 bytes (a memory 400) besides its content.
func (w Window) sizeHint() int {
	n := 512
	if w.Summary != nil {
		n += len(w.Summary.Content) + 300
	}
	for _, m := range w.Messages {
		n += len(m.Content) + 320
	}
	for _, m := range w.Memories {
		n += len(m.Content) + 400
	}
	return n
}

// encodable says whether every time and number of w is one encoding/json
// encodes (it refuses the others).
func (w Window) encodable() bool {
	okTime := func(t time.Time) bool { y := t.Year(); return y >= 0 && y <= 9999 }
	okFloat := func(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
	if !okFloat(w.SummaryShare) || !okFloat(w.MemoryShare) || (w.Summary != nil && !okTime(w.Summary.CreatedAt)) {
		return false
	}
	for _, m := range w.Messages {
		if !okTime(m.CreatedAt) || !okTime(m.UpdatedAt) {
			return false
		}
	}
	for _, m := range w.Memories {
		if !okTime(m.CreatedAt) || !okTime(m.UpdatedAt) || (m.ExpiresAt != nil && !okTime(*m.ExpiresAt)) ||
			!okFloat(m.Importance) || !okFloat(m.Score) {
			return false
		}
	}
	return true
}

// jsonEncoder appends JSON to b; err is the first error of a metadata
// map's encoding.
type jsonEncoder struct {
	b   []byte
	err error
}

func (e *jsonEncoder) message(m WindowMessage) {
	e.raw(`{"id":`)
	e.str(m.ID)
	e.raw(`,"session_id":`)
	e.str(m.SessionID)
	e.raw(`,"user_id":`)
	e.str(m.UserID)
	e.raw(`,"seq":`)
	e.int(m.Seq)
	e.raw(`,"role":`)
	e.str(m.Role)
	e.raw(`,"content":`)
	e.str(m.Content)
	if m.Name != "" {
		e.raw(`,"name":`)
		e.str(m.Name)
	}
	e.raw(`,"metadata":`)
	e.metadata(m.Metadata)
	e.raw(`,"tokens":`)
	e.int(m.Tokens)
	e.raw(`,"embedding_dim":`)
	e.int(m.EmbeddingDim)
	e.raw(`,"version":`)
	e.int(m.Version)
	e.raw(`,"created_at":`)
	e.time(m.CreatedAt)
	e.raw(`,"updated_at":`)
	e.time(m.UpdatedAt)
	e.raw(`,"cost":`)
	e.int(m.Cost)
	e.raw("}")
}

func (e *jsonEncoder) memory(m WindowMemory) {
	e.raw(`{"id":`)
	e.str(m.ID)
	e.raw(`,"user_id":`)
	e.str(m.UserID)
	e.raw(`,"type":`)
	e.str(m.Type)
	e.raw(`,"content":`)
	e.str(m.Content)
	e.raw(`,"importance":`)
	e.float(m.Importance)
	e.raw(`,"tags":`)
	appendList(e, m.Tags, e.str)
	e.raw(`,"metadata":`)
	e.metadata(m.Metadata)
	e.raw(`,"source_session_id":`)
	e.strOrNull(m.SourceSessionID)
	e.raw(`,"source_message_id":`)
	e.strOrNull(m.SourceMessageID)
	e.raw(`,"tokens":`)
	e.int(m.Tokens)
	e.raw(`,"expires_at":`)
	if m.ExpiresAt == nil {
		e.raw("null")
	} else {
		e.time(*m.ExpiresAt)
	}
	e.raw(`,"embedding_dim":`)
	e.int(m.EmbeddingDim)
	e.raw(`,"version":`)
	e.int(m.Version)
	e.raw(`,"created_at":`)
	e.time(m.CreatedAt)
	e.raw(`,"updated_at":`)
	e.time(m.UpdatedAt)
	e.raw(`,"score":`)
	e.float(m.Score)
	e.raw(`,"cost":`)
	e.int(m.Cost)
	e.raw("}")
}

// appendList encodes items as a JSON array (null when nil), each with
// each.
func appendList[T any](e *jsonEncoder, items []T, each func(T)) {
	if items == nil {
		e.raw("null")
		return
	}
	e.raw("[")
	for i, it := range items {
		if i > 0 {
			e.raw(",")
		}
		each(it)
	}
	e.raw("]")
}

func (e *jsonEncoder) raw(s string) { e.b = append(e.b, s...) }

func (e *jsonEncoder) int(n int) { e.b = strconv.AppendInt(e.b, int64(n), 10) }

// time is encoding/json's time.Time: RFC 3339 with nanoseconds, quoted.
func (e *jsonEncoder) time(t time.Time) {
	e.b = append(e.b, '"')
	e.b = t.AppendFormat(e.b, time.RFC3339Nano)
	e.b = append(e.b, '"')
}

// float is encoding/json's float64: like ES6's number to string, %f
// between 1e-6 and 1e21, else %e with its exponent unpadded.
func (e *jsonEncoder) float(f float64) {
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	e.b = strconv.AppendFloat(e.b, f, format, -1, 64)
	if format == 'e' {
		n := len(e.b)
		if n >= 4 && e.b[n-4] == 'e' && e.b[n-3] == '-' && e.b[n-2] == '0' {
			e.b[n-2] = e.b[n-1]
			e.b = e.b[:n-1]
		}
	}
}

func (e *jsonEncoder) strOrNull(s *string) {
	if s == nil {
		e.raw("null")
		return
	}
	e.str(*s)
}

// metadata encodes a map as encoding/json does, which it asks for all but
// nil and empty maps.
func (e *jsonEncoder) metadata(m map[string]any) {
	switch {
	case m == nil:
		e.raw("null")
	case len(m) == 0:
		e.raw("{}")
	default:
		out, err := json.Marshal(m)
		if err != nil && e.err == nil {
			e.err = err
		}
		e.b = append(e.b, out...)
	}
}

// str is encoding/json's string: quoted, with <, > and & escaped for
// HTML, control characters escaped, invalid UTF-8 as U+FFFD, and U+2028
// and U+2029 escaped.
func (e *jsonEncoder) str(s string) {
	const hex = "0123456789abcdef"
	b := append(e.b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	e.b = append(b, '"')
}

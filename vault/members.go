package vault

import (
	"errors"
	"fmt"
)

// Sealing and opening split an event's JSON payload into its top-level
// members and join them again, on every append and on every event a
// projection applies. encoding/json's decoding into a map and encoding
// back cost four times the decoding the event's readers do anyway (see
// BenchmarkSealOpen); walking the members once and copying their bytes
// costs a fraction of it. The payloads are JSON objects that Postgres
// (jsonb) or encoding/json wrote, so the walk only needs to find where
// each member ends; it refuses what is not an object.

// errNotObject is the error of a payload that is not a JSON object.
var errNotObject = errors.New("payload is not a JSON object")

// eachMember calls fn with each top-level member of the JSON object obj:
// its key as written between the quotes, and the whole member, from the
// key's opening quote to the end of its value.
func eachMember(obj []byte, fn func(key, member []byte)) error {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return errNotObject
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for i < len(obj) {
		if obj[i] != '"' {
			return fmt.Errorf("%w: a key expected at byte %d", errNotObject, i)
		}
		start := i
		end, err := skipString(obj, i)
		if err != nil {
			return err
		}
		key := obj[start+1 : end-1]
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return fmt.Errorf("%w: ':' expected at byte %d", errNotObject, i)
		}
		if i, err = skipValue(obj, skipSpace(obj, i+1)); err != nil {
			return err
		}
		fn(key, obj[start:i])
		i = skipSpace(obj, i)
		if i >= len(obj) {
			break
		}
		switch obj[i] {
		case ',':
			i = skipSpace(obj, i+1)
		case '}':
			return nil
		default:
			return fmt.Errorf("%w: ',' or '}' expected at byte %d", errNotObject, i)
		}
	}
	return fmt.Errorf("%w: it ends early", errNotObject)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1, nil
		}
	}
	return 0, fmt.Errorf("%w: a string does not end", errNotObject)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, fmt.Errorf("%w: a value expected", errNotObject)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				end, err := skipString(b, i)
				if err != nil {
					return 0, err
				}
				i = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("%w: an object or array does not end", errNotObject)
	default: // a number, true, false or null
		start := i
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\n' && b[i] != '\t' && b[i] != '\r' {
			i++
		}
		if i == start {
			return 0, fmt.Errorf("%w: a value expected at byte %d", errNotObject, i)
		}
		return i, nil
	}
}

// appendMember appends member to the object being built in buf (which
// starts with '{'), after a comma if it holds one already.
func appendMember(buf, member []byte) []byte {
	if len(buf) > 1 {
		buf = append(buf, ',')
	}
	return append(buf, member...)
}

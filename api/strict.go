package api

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/arq-memory/arq/domain"
)

// strictKeys is a 422 naming every key of the JSON document raw that
// encoding/json would take more loosely than the API's contract allows;
// nil when there is none, or when raw is not JSON (the decode that
// follows names that fault):
//
//   - a key of an object decoded into a struct that is not exactly one of
//     its field names, also when it differs only by case (encoding/json
//     would match it case-insensitively);
//   - a key given twice in one object (encoding/json would keep the last
//     value), free-form objects such as metadata included, where keys
//     that differ only by case are distinct.
//
// and every key or string, anywhere in the body, that is no text: bytes
// that are no UTF-8, or a \u escape of a lone UTF-16 surrogate, which
// encoding/json would quietly store as U+FFFD.
//
// It scans raw once alongside dst's type, without decoding values: linear
// in the size of the body, and cheaper than the decode that follows.
func strictKeys(raw []byte, dst reflect.Type) error {
	s := &keyScan{raw: raw, v: &domain.ValidationError{}}
	err := s.value(dst)
	if err != nil && !errors.Is(err, errEnoughFaults) {
		return nil
	}
	// The scan trusts raw to be JSON; what is not is the decode's to
	// answer (400), faults or not.
	if len(s.v.Fields) > 0 && !json.Valid(raw) {
		return nil
	}
	return s.v.Err()
}

// maxKeyFaults bounds the faults one body is answered with: a body of a
// megabyte could otherwise hold a hundred thousand.
const maxKeyFaults = 100

var (
	// errEnoughFaults ends a scan that found maxKeyFaults faults.
	errEnoughFaults = errors.New("enough faults found")
	// errNotJSON ends a scan of a body that is not JSON.
	errNotJSON = errors.New("not JSON")
)

// keyScan is one scan of strictKeys: raw read up to i, path the place of
// the value being read ("messages[0].metadata"), depth how many arrays
// and objects hold it.
type keyScan struct {
	raw   []byte
	i     int
	path  []byte
	depth int
	v     *domain.ValidationError
}

// maxDepth is encoding/json's bound on nesting, past which it answers
// that the body is no JSON it takes; the scan leaves it that answer.
const maxDepth = 10000

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// value reads the JSON value at i, which decodes into t; nil t is
// free-form data (any, or a value whose type holds no object), whose keys
// are only checked for duplicates.
func (s *keyScan) value(t reflect.Type) error {
	t = decodedType(t)
	s.space()
	if s.i >= len(s.raw) {
		return errNotJSON
	}
	switch s.raw[s.i] {
	case '{', '[':
		if s.depth++; s.depth > maxDepth {
			return errNotJSON
		}
		defer func() { s.depth-- }()
		s.i++
		if s.raw[s.i-1] == '{' {
			return s.object(t)
		}
		return s.array(t)
	case '"':
		_, bad, err := s.str()
		if err == nil && bad != "" {
			err = s.fault(bad)
		}
		return err
	}
	// A number, true, false or null: its bytes up to the next delimiter
	// (json.Valid judges them, if it comes to that).
	start := s.i
	for ; s.i < len(s.raw); s.i++ {
		switch s.raw[s.i] {
		case ' ', '\t', '\r', '\n', ',', ']', '}':
			if s.i == start {
				return errNotJSON
			}
			return nil
		}
	}
	return nil
}

// array reads the elements of an array whose '[' was read, and its ']'.
func (s *keyScan) array(t reflect.Type) error {
	var elem reflect.Type
	if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	n := len(s.path)
	defer func() { s.path = s.path[:n] }()
	for i := 0; ; i++ {
		s.space()
		if s.i < len(s.raw) && s.raw[s.i] == ']' && i == 0 {
			s.i++
			return nil
		}
		s.path = strconv.AppendInt(append(s.path[:n], '['), int64(i), 10)
		s.path = append(s.path, ']')
		if err := s.value(elem); err != nil {
			return err
		}
		if done, err := s.next(']'); done || err != nil {
			return err
		}
	}
}

// object reads the members of an object whose '{' was read, and its '}'.
func (s *keyScan) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type // of a map
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	n := len(s.path)
	defer func() { s.path = s.path[:n] }()
	var seen keySet
	for first := true; ; first = false {
		s.space()
		if s.i < len(s.raw) && s.raw[s.i] == '}' && first {
			s.i++
			return nil
		}
		key, bad, err := s.str()
		if err != nil {
			return err
		}
		s.path = s.path[:n]
		if n > 0 {
			s.path = append(s.path, '.')
		}
		s.path = append(s.path, key...)
		vt := elem
		ft, known := fields[string(key)]
		if bad != "" {
			err = s.fault("the key " + bad)
		} else {
			switch seen.add(key) {
			case keyTwice:
				if fields == nil || known { // else named unknown already
					err = s.fault("is given twice")
				}
			case keyAgain:
			case keyNew:
				switch {
				case fields == nil:
				case known:
					vt = ft
				case hasFold(fields, string(key)):
					err = s.fault("is not a field of this request (field names are case-sensitive)")
				default:
					err = s.fault("is not a field of this request")
				}
			}
		}
		if err != nil {
			return err
		}
		s.space()
		if s.i >= len(s.raw) || s.raw[s.i] != ':' {
			return errNotJSON
		}
		s.i++
		if err := s.value(vt); err != nil {
			return err
		}
		if done, err := s.next('}'); done || err != nil {
			return err
		}
	}
}

// next reads a ',' (false) or the close that ends the array or object
// (true).
func (s *keyScan) next(close byte) (bool, error) {
	s.space()
	switch {
	case s.i >= len(s.raw):
		return false, errNotJSON
	case s.raw[s.i] == ',':
		s.i++
		return false, nil
	case s.raw[s.i] == close:
		s.i++
		return true, nil
	}
	return false, errNotJSON
}

// str reads the string at i and returns its text as encoding/json
// decodes it: "\u0061" is "a", bytes that are no UTF-8 are U+FFFD. bad
// says why the string is no text the API takes, "" when it is: bytes that
// are no UTF-8, or a \u escape of a lone UTF-16 surrogate, both of which
// encoding/json would quietly turn into U+FFFD.
func (s *keyScan) str() (text []byte, bad string, err error) {
	if s.i >= len(s.raw) || s.raw[s.i] != '"' {
		return nil, "", errNotJSON
	}
	start, escaped, ascii := s.i+1, false, true
	for s.i = start; s.i < len(s.raw); s.i++ {
		switch c := s.raw[s.i]; {
		case c == '\\':
			escaped = true
			if u, ok := hex4(s.raw, s.i); ok && utf16.IsSurrogate(rune(u)) {
				// A high surrogate takes the low one escaped next to it;
				// anything else is lone.
				if low, ok := hex4(s.raw, s.i+6); u < 0xdc00 && ok && low >= 0xdc00 && low <= 0xdfff {
					s.i += 6
				} else {
					bad = "must not hold a lone UTF-16 surrogate (\\ud800 to \\udfff)"
				}
			}
			s.i++
		case c >= utf8.RuneSelf:
			ascii = false
		case c == '"':
			text := s.raw[start:s.i]
			s.i++
			valid := ascii || utf8.Valid(text)
			if !valid {
				bad = "must be valid UTF-8"
			}
			if !escaped && valid {
				return text, bad, nil
			}
			var t string
			if json.Unmarshal(s.raw[start-1:s.i], &t) != nil {
				return nil, "", errNotJSON
			}
			return []byte(t), bad, nil
		}
	}
	return nil, "", errNotJSON
}

// hex4 is the code unit of the escape \uXXXX at raw[i], if there is one.
func hex4(raw []byte, i int) (uint16, bool) {
	if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
		return 0, false
	}
	var u uint16
	for _, c := range raw[i+2 : i+6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		u = u<<4 | uint16(c)
	}
	return u, true
}

// space skips white space.
func (s *keyScan) space() {
	for s.i < len(s.raw) {
		switch s.raw[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// fault records a fault of the key at the scan's path; errEnoughFaults
// when it is the last one the scan reports.
func (s *keyScan) fault(msg string) error {
	s.v.Add(string(s.path), "%s", msg)
	if len(s.v.Fields) >= maxKeyFaults {
		return errEnoughFaults
	}
	return nil
}

// keySet is the keys of one object read so far: a short list while the
// object is small, as most are, a map past that.
type keySet struct {
	few [keySetSmall]struct {
		key  []byte
		told bool
	}
	n    int             // of few in use
	many map[string]bool // key → reported as given twice
}

// What add found.
const (
	keyNew   = iota
	keyTwice // given twice, reported now
	keyAgain // given twice, reported already
)

// keySetSmall is the number of keys past which a keySet is a map.
const keySetSmall = 16

// add adds key and says whether it was there already.
func (k *keySet) add(key []byte) int {
	if k.many == nil {
		for i := range k.n {
			if f := &k.few[i]; bytes.Equal(f.key, key) {
				if f.told {
					return keyAgain
				}
				f.told = true
				return keyTwice
			}
		}
		if k.n < keySetSmall {
			k.few[k.n].key = key
			k.n++
			return keyNew
		}
		k.many = make(map[string]bool, 2*keySetSmall)
		for _, f := range k.few {
			k.many[string(f.key)] = f.told
		}
	}
	told, ok := k.many[string(key)]
	switch {
	case !ok:
		k.many[string(key)] = false
		return keyNew
	case told:
		return keyAgain
	}
	k.many[string(key)] = true
	return keyTwice
}

// decodedType is the type encoding/json fills for a value of type t: the
// pointed-to type, or nil when the value is free-form to this walk (an
// interface, or a type that decodes itself, whose keys are its own).
func decodedType(t reflect.Type) reflect.Type {
	for t != nil {
		if t.Kind() == reflect.Interface ||
			reflect.PointerTo(t).Implements(unmarshalerType) ||
			reflect.PointerTo(t).Implements(textUnmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

// hasFold reports whether key is a field name of fields in another case.
func hasFold(fields map[string]reflect.Type, key string) bool {
	for f := range fields {
		if strings.EqualFold(f, key) {
			return true
		}
	}
	return false
}

// fieldCache holds structFields by type: request types are few.
var fieldCache sync.Map // reflect.Type → map[string]reflect.Type

// structFields maps the JSON names encoding/json decodes into the struct
// type t to their types: tagged names, else Go names, with the fields of
// untagged embedded structs promoted (a shallower name wins).
func structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	out := map[string]reflect.Type{}
	for _, f := range jsonFields(t) {
		out[f.name] = f.typ
	}
	fieldCache.Store(t, out)
	return out
}

package api

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
)

// faults is strictKeys' answer as "field: message" lines, sorted.
func faults(t *testing.T, raw string, dst any) []string {
	t.Helper()
	err := strictKeys([]byte(raw), reflect.TypeOf(dst))
	if err == nil {
		return nil
	}
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("%s: %v is no validation error", raw, err)
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field+": "+f.Message)
	}
	slices.Sort(out)
	return out
}

func TestStrictKeys(t *testing.T) {
	const (
		unknown = "is not a field of this request"
		byCase  = unknown + " (field names are case-sensitive)"
		twice   = "is given twice"
		notUTF8 = "must be valid UTF-8"
		lone    = "must not hold a lone UTF-16 surrogate (\\ud800 to \\udfff)"
	)
	many := func(n int, last string) string { // an object of n keys k0…, then last
		var b strings.Builder
		b.WriteString(`{"type":"semantic","metadata":{`)
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		return b.String() + last + `}}`
	}
	for _, c := range []struct {
		name string
		raw  string
		dst  any
		want []string
	}{
		{"exact", `{"type":"semantic","content":"a","importance":0.5,"tags":["x"],"expires_at":"2026-01-01T00:00:00Z","embedding":[1,2]}`, &storeMemoryRequest{}, nil},
		{"by case", `{"Type":"semantic","CONTENT":"a","content":"b"}`, &storeMemoryRequest{}, []string{"CONTENT: " + byCase, "Type: " + byCase}},
		{"unknown", `{"nick":1}`, &registerUserRequest{}, []string{"nick: " + unknown}},
		{"twice", `{"importance":0.5,"importance":0.6}`, &updateMemoryRequest{}, []string{"importance: " + twice}},
		{"thrice, named once", `{"content":"a","content":"b","content":"c"}`, &updateMemoryRequest{}, []string{"content: " + twice}},
		{"unknown twice, named once", `{"nick":1,"nick":2}`, &registerUserRequest{}, []string{"nick: " + unknown}},
		{"an escape is its text", `{"content":"a","\u0063ontent":"b"}`, &updateMemoryRequest{}, []string{"content: " + twice}},
		{"embedded struct's fields", `{"role":"user","content":"a","Name":"x"}`, &appendMessagesRequest{}, []string{"Name: " + byCase}},
		{"each message", `{"messages":[{"role":"user"},{"role":"user","role":"x","Content":"b"}]}`, &appendMessagesRequest{}, []string{"messages[1].Content: " + byCase, "messages[1].role: " + twice}},
		{"metadata keys by case are distinct", `{"metadata":{"k":1,"K":2,"n":{"x":1,"X":[{"y":1,"Y":2}]}}}`, &updateUserRequest{}, nil},
		{"metadata twice, at any depth", `{"metadata":{"k":1,"k":2,"n":{"a":[{"y":1,"y":2}]}}}`, &updateUserRequest{}, []string{"metadata.k: " + twice, "metadata.n.a[0].y: " + twice}},
		{"map of strings", `{"metadata":{"a":"1","a":"2"}}`, &searchRequest{}, []string{"metadata.a: " + twice}},
		{"a big object", many(100, `"k42":0`), &storeMemoryRequest{}, []string{"metadata.k42: " + twice}},
		{"a big object, thrice", many(20, `"k3":0,"k3":1`), &storeMemoryRequest{}, []string{"metadata.k3: " + twice}},
		{"empty", `{"metadata":{},"tags":[]}`, &storeMemoryRequest{}, nil},
		{"a value of the wrong kind is the decode's", `{"content":{"a":1},"tags":{"b":2}}`, &storeMemoryRequest{}, nil},
		{"not JSON is the decode's", `{"Type":"semantic",`, &storeMemoryRequest{}, nil},
		{"not JSON after a fault is the decode's", `{"Type":"semantic"]`, &storeMemoryRequest{}, nil},
		{"not JSON the scan passes is the decode's", `{"Type":tru}`, &storeMemoryRequest{}, nil},
		{"valid text", `{"content":"h\u00e9 \ud83d\ude00 \uD83D\uDE00 \\ud800 é 😀"}`, &updateMemoryRequest{}, nil},
		{"not UTF-8", "{\"content\":\"a\xffb\",\"metadata\":{\"k\":[\"\xc3\"],\"\xe2\x82\":1}}", &updateMemoryRequest{}, []string{"content: " + notUTF8, "metadata.k[0]: " + notUTF8, "metadata.\ufffd\ufffd: the key " + notUTF8}},
		{"not UTF-8 beside an escape", "{\"content\":\"\\n\xff\"}", &updateMemoryRequest{}, []string{"content: " + notUTF8}},
		{"lone high surrogate", `{"content":"a\ud800b"}`, &updateMemoryRequest{}, []string{"content: " + lone}},
		{"lone high surrogate at the end", `{"content":"\uDBFF"}`, &updateMemoryRequest{}, []string{"content: " + lone}},
		{"two high surrogates", `{"content":"\ud800\ud800\udc00"}`, &updateMemoryRequest{}, []string{"content: " + lone}},
		{"lone low surrogate", `{"metadata":{"a":{"b":"\udc00"}}}`, &updateMemoryRequest{}, []string{"metadata.a.b: " + lone}},
		{"lone surrogate in a key", `{"metadata":{"\udfff":1}}`, &updateMemoryRequest{}, []string{"metadata.\ufffd: the key " + lone}},
		{"too deep is the decode's", `{"Type":1,"metadata":{"a":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}}`, &storeMemoryRequest{}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := faults(t, c.raw, c.dst); !slices.Equal(got, c.want) {
				t.Fatalf("%s:\n got %q\nwant %q", c.raw, got, c.want)
			}
		})
	}
	// A body of a hundred thousand faults is answered with a hundred.
	var b strings.Builder
	b.WriteString("{")
	for i := range 100000 {
		fmt.Fprintf(&b, `"x%d":0,`, i)
	}
	b.WriteString(`"type":"semantic"}`)
	if got := faults(t, b.String(), &storeMemoryRequest{}); len(got) != maxKeyFaults {
		t.Fatalf("%d faults, want %d", len(got), maxKeyFaults)
	}
}

// BenchmarkStrictKeys scans a megabyte of messages, the largest body the
// API takes.
func BenchmarkStrictKeys(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"messages":[`)
	for i := 0; body.Len() < 1<<20; i++ {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"role":"user","content":"hello there %d","metadata":{"a":%d,"b":[1,2,3]}}`, i, i)
	}
	body.WriteString(`]}`)
	raw := []byte(body.String())
	dst := reflect.TypeOf(&appendMessagesRequest{})
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if err := strictKeys(raw, dst); err != nil {
			b.Fatal(err)
		}
	}
}

package vault

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzEachMember checks the member walk against encoding/json: for every
// JSON object, the members it finds are the object's, key for key and
// value for value, and rejoined they decode to the same object.
func FuzzEachMember(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a": "x\"}y", "b": {"c": [1, "]", {"d": null}]}, "e": true}`,
		`{"content": "brace { and ] and \\\\", "n": -1.5e3, "m": {}}`,
		`{"k":"v","arr":[[],[{}]],"u":"\u00e9\ud83d\ude00"}`,
		`{"a":1,}`, `[1]`, `"x"`, `{"a" 1}`, `{"a":`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return // the walk may refuse it or not: Postgres never writes it
		}
		got := map[string]json.RawMessage{}
		rebuilt := []byte{'{'}
		err := eachMember(data, func(key, member []byte) {
			var k string
			if json.Unmarshal(append(append([]byte{'"'}, key...), '"'), &k) != nil {
				t.Fatalf("key %q does not decode", key)
			}
			got[k] = json.RawMessage(bytes.TrimSpace(valueOf(member)))
			rebuilt = appendMember(rebuilt, member)
		})
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		var again map[string]json.RawMessage
		if err := json.Unmarshal(append(rebuilt, '}'), &again); err != nil {
			t.Fatalf("%q rejoined as %q: %v", data, rebuilt, err)
		}
		norm := func(m map[string]json.RawMessage) map[string]string {
			out := map[string]string{}
			for k, v := range m {
				var b bytes.Buffer
				_ = json.Compact(&b, v)
				out[k] = b.String()
			}
			return out
		}
		if !reflect.DeepEqual(norm(got), norm(want)) || !reflect.DeepEqual(norm(again), norm(want)) {
			t.Fatalf("%q: members %v, rejoined %v, want %v", data, norm(got), norm(again), norm(want))
		}
	})
}

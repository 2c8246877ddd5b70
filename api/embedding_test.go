package api

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"testing"
)

// oldEmbeddingIn is how embeddingIn read an array before it scanned it
// itself: each element decoded by encoding/json.
func oldEmbeddingIn(b []byte) embeddingIn {
	var e embeddingIn
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return e
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return embeddingIn{fault: "must be an array of numbers"}
	}
	e.values = make([]float64, len(raw))
	for i, r := range raw {
		r = bytes.TrimSpace(r)
		var n json.Number
		if len(r) == 0 || (r[0] != '-' && (r[0] < '0' || r[0] > '9')) || json.Unmarshal(r, &n) != nil {
			return embeddingIn{fault: "must be an array of numbers"}
		}
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(x, 0) {
			return embeddingIn{fault: "must hold finite numbers within float32 range"}
		}
		e.values[i] = x
	}
	return e
}

// The embedding's own scan reads every body as decoding each element with
// encoding/json did: numbers, faults, null and white space alike.
func TestEmbeddingInReadsAsEncodingJSON(t *testing.T) {
	for _, body := range []string{
		`{"embedding":[1,2.5,-3e2,0]}`, `{"embedding":[ 1 , 2 ,3 ]}`, `{"embedding":[]}`, `{"embedding":[ ]}`,
		`{"embedding":null}`, `{"embedding": null }`, `{"embedding":"1,2"}`, `{"embedding":{"a":1}}`, `{"embedding":7}`,
		`{"embedding":[1,"2"]}`, `{"embedding":["1"]}`, `{"embedding":[1,[2]]}`, `{"embedding":[true]}`, `{"embedding":[null]}`,
		`{"embedding":[1e400]}`, `{"embedding":[-1e400]}`, `{"embedding":[1e-400]}`, `{"embedding":[-0.0,1E+2,` + "\n\t" + `3]}`,
		`{"embedding":[1,{"x":[1,2]}]}`, `{"embedding":[1,"a,b",2]}`,
	} {
		var got struct {
			Embedding embeddingIn `json:"embedding"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		var raw struct {
			Embedding json.RawMessage `json:"embedding"`
		}
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatal(err)
		}
		want := oldEmbeddingIn(raw.Embedding)
		if !reflect.DeepEqual(got.Embedding, want) {
			t.Errorf("%s: read %+v, encoding/json read %+v", body, got.Embedding, want)
		}
	}
}

package api

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strconv"

	"github.com/arq-memory/arq/domain"
)

// embeddingIn is an "embedding" field of a request body: absent or null,
// or an array of numbers. Anything else is kept as a fault, so that it is
// reported as a wrong field (422) with the request's other fields rather
// than as malformed JSON (400).
type embeddingIn struct {
	values []float64
	fault  string
}

// UnmarshalJSON implements json.Unmarshaler.
func (e *embeddingIn) UnmarshalJSON(b []byte) error {
	*e = embeddingIn{}
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		return nil
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		e.fault = "must be an array of numbers"
		return nil
	}
	e.values = make([]float64, len(raw))
	for i, r := range raw {
		// json.Number takes a string that holds a number ("1") as the
		// number: only a JSON number is one.
		r = bytes.TrimSpace(r)
		var n json.Number
		if len(r) == 0 || (r[0] != '-' && (r[0] < '0' || r[0] > '9')) || json.Unmarshal(r, &n) != nil {
			e.fault = "must be an array of numbers"
			return nil
		}
		x, err := strconv.ParseFloat(string(n), 64)
		if err != nil || math.IsInf(x, 0) {
			e.fault = "must hold finite numbers within float32 range"
			return nil
		}
		e.values[i] = x
	}
	return nil
}

// check adds a fault to v under field and returns the numbers for the
// domain to validate further.
func (e embeddingIn) check(v *domain.ValidationError, field string) []float64 {
	if e.fault != "" {
		v.Add(field, "%s", e.fault)
		return nil
	}
	return e.values
}

// set reports whether the field was given (and not null).
func (e embeddingIn) set() bool { return e.values != nil || e.fault != "" }

// queryEmbedding is the embedding a search or context window ranks with
// (see MemoryQueries.QueryEmbedding); a field that is no array of numbers
// is a *domain.ValidationError naming "embedding".
func (r *resources) queryEmbedding(ctx context.Context, in embeddingIn, text string) ([]float32, error) {
	values, err := in.client()
	if err != nil {
		return nil, err
	}
	return r.Queries.QueryEmbedding(ctx, values, text)
}

// client is the client's embedding, nil when it sent none; a field that
// is no array of numbers is a *domain.ValidationError naming "embedding".
func (e embeddingIn) client() ([]float64, error) {
	if !e.set() {
		return nil, nil
	}
	v := &domain.ValidationError{}
	values := e.check(v, "embedding")
	if err := v.Err(); err != nil {
		return nil, err
	}
	return values, nil
}

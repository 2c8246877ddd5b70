package fakellm

import (
	"encoding/json"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"unicode"
)

// Vector is the fake's embedding of text in dim dimensions: each
// lowercase word adds ±1 to a dimension its hash picks, and the sum is
// normalised, so texts sharing words point the same way. A text without
// words is the first unit vector.
func Vector(text string, dim int) []float32 {
	sum := make([]float64, dim)
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		h := fnv.New64a()
		h.Write([]byte(w))
		v := h.Sum64()
		sign := 1.0
		if v>>63 == 1 {
			sign = -1
		}
		sum[v%uint64(dim)] += sign
	}
	norm := 0.0
	for _, x := range sum {
		norm += x * x
	}
	out := make([]float32, dim)
	if norm == 0 {
		out[0] = 1
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range sum {
		out[i] = float32(x / norm)
	}
	return out
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decode request: "+err.Error())
		return
	}
	reply, isScripted := s.record(StepEmbeddings, body)
	if !s.wait(r, reply.Delay) {
		return
	}
	if isScripted && scripted(w, reply, func(Reply) any { return map[string]any{"object": "list", "data": []any{}} }) {
		return
	}
	var texts []string
	if err := json.Unmarshal(req.Input, &texts); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			apiError(w, http.StatusBadRequest, "input must be a string or a list of strings")
			return
		}
		texts = []string{one}
	}
	if req.Model == "" || len(texts) == 0 {
		apiError(w, http.StatusBadRequest, "model and input are required")
		return
	}
	data := make([]any, len(texts))
	for i, t := range texts {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Vector(t, s.dim)}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data, "model": req.Model,
		"usage": map[string]any{"prompt_tokens": 0, "total_tokens": 0},
	})
}

package readmodel

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// tricky are strings encoding/json escapes: quotes, backslashes, HTML,
// control characters, invalid UTF-8, U+2028 and U+2029, and others it
// leaves alone.
var tricky = []string{"", "plain words", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\r\b\f\x00\x1f\x7f",
	"bad \xff\xfe utf8 \xc3", "line\u2028para\u2029", "émoji 😀 中文", "\u00e9\u0301", "/slash", "\x80", "a\xe2\x80"}

func randomText(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return tricky[r.IntN(len(tricky))]
	}
	b := make([]byte, r.IntN(40))
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	if r.IntN(2) == 0 {
		return string(b)
	}
	return tricky[r.IntN(len(tricky))] + string(b) + tricky[r.IntN(len(tricky))]
}

var floats = []float64{0, 1, -1, 0.5, 0.1, 1.0 / 3, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 123456789.125, -2.5e-9, 0.30000000000000004, math.SmallestNonzeroFloat64, math.MaxFloat64}

func randomFloat(r *rand.Rand) float64 {
	if r.IntN(2) == 0 {
		return floats[r.IntN(len(floats))]
	}
	return math.Float64frombits(r.Uint64()>>2) * float64(1-2*r.IntN(2))
}

func randomTime(r *rand.Rand) time.Time {
	zones := []*time.Location{time.UTC, time.FixedZone("x", -7*3600-1800), time.FixedZone("y", 5*3600+45*60)}
	return time.Unix(r.Int64N(1<<36)-(1<<35), r.Int64N(1e9)*int64(r.IntN(2))).In(zones[r.IntN(len(zones))])
}

func randomMetadata(r *rand.Rand) map[string]any {
	switch r.IntN(4) {
	case 0:
		return nil
	case 1:
		return map[string]any{}
	}
	return map[string]any{randomText(r): randomText(r), "n": randomFloat(r), "b": true, "nested": map[string]any{"l": []any{1.5, "<x>", nil}}}
}

func randomWindow(r *rand.Rand) Window {
	str := func() *string {
		if r.IntN(2) == 0 {
			return nil
		}
		s := randomText(r)
		return &s
	}
	w := Window{SessionID: randomText(r), UserID: randomText(r), Query: randomText(r), MaxTokens: r.IntN(200000),
		SummaryShare: randomFloat(r), MemoryShare: randomFloat(r), TotalTokens: r.IntN(1 << 20)}
	if r.IntN(2) == 0 {
		w.Summary = &WindowSummary{Summary: Summary{SessionID: randomText(r), Version: r.IntN(9), Content: randomText(r), Tokens: r.IntN(999),
			FromSeq: r.IntN(99), ToSeq: r.IntN(999), Method: randomText(r), CreatedAt: randomTime(r)}, Cost: r.IntN(999)}
	}
	if r.IntN(8) > 0 {
		w.Messages = []WindowMessage{}
	}
	for range r.IntN(6) {
		name := ""
		if r.IntN(2) == 0 {
			name = randomText(r)
		}
		w.Messages = append(w.Messages, WindowMessage{Message: Message{ID: randomText(r), SessionID: randomText(r), UserID: randomText(r),
			Seq: r.IntN(1e6) - 5, Role: randomText(r), Content: randomText(r), Name: name, Metadata: randomMetadata(r), Tokens: r.IntN(9999),
			EmbeddingDim: r.IntN(2000), Version: r.IntN(99), CreatedAt: randomTime(r), UpdatedAt: randomTime(r)}, Cost: r.IntN(9999)})
	}
	if r.IntN(8) > 0 {
		w.Memories = []WindowMemory{}
	}
	for range r.IntN(6) {
		var tags []string
		if r.IntN(3) > 0 {
			tags = []string{}
			for range r.IntN(3) {
				tags = append(tags, randomText(r))
			}
		}
		var exp *time.Time
		if r.IntN(2) == 0 {
			t := randomTime(r)
			exp = &t
		}
		w.Memories = append(w.Memories, WindowMemory{Memory: Memory{ID: randomText(r), UserID: randomText(r), Type: randomText(r),
			Content: randomText(r), Importance: randomFloat(r), Tags: tags, Metadata: randomMetadata(r), SourceSessionID: str(),
			SourceMessageID: str(), Tokens: r.IntN(999), ExpiresAt: exp, EmbeddingDim: r.IntN(9), Version: r.IntN(9),
			CreatedAt: randomTime(r), UpdatedAt: randomTime(r)}, Score: randomFloat(r), Cost: r.IntN(999)})
	}
	return w
}

// TestWindowAppendJSONIsMarshal checks that a window's JSON is, byte for
// byte, what encoding/json made of it before: over random windows of
// strings it escapes (HTML, control characters, invalid UTF-8, U+2028),
// numbers at its format's edges, times in several zones, nil and empty
// maps, slices and pointers; and that a window it refuses (a time past
// year 9999, a score that is not a number) is refused still.
func TestWindowAppendJSONIsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(20, 26))
	for i := 0; i < 3000; i++ {
		w := randomWindow(r)
		want, wantErr := json.Marshal(w)
		got, err := w.AppendJSON([]byte("prefix"))
		if (err != nil) != (wantErr != nil) || err == nil && !bytes.Equal(got, append([]byte("prefix"), want...)) {
			t.Fatalf("window %d: AppendJSON\n%s (%v)\nMarshal\n%s (%v)", i, got, err, want, wantErr)
		}
	}
	for _, bad := range []func(*Window){
		func(w *Window) {
			w.Summary = &WindowSummary{Summary: Summary{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
		},
		func(w *Window) { w.Memories = []WindowMemory{{Score: math.NaN()}} },
		func(w *Window) { w.SummaryShare = math.Inf(1) },
		func(w *Window) {
			w.Messages = []WindowMessage{{Message: Message{Metadata: map[string]any{"x": math.Inf(-1)}}}}
		},
	} {
		w := randomWindow(r)
		bad(&w)
		if _, err := w.AppendJSON(nil); err == nil {
			t.Fatalf("AppendJSON encoded a window encoding/json refuses")
		}
	}
}

// Package fakellm is an OpenAI-compatible server for tests: chat
// completions from a small deterministic "model" that knows ARQ's
// extraction steps, and embeddings that make texts sharing words similar.
// Tests script failures, odd answers and slow answers per step, and read
// what was sent.
package fakellm

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/arq-memory/arq/extract"
)

// Steps, as Calls, LastRequest and Script name them: a chat call is named
// by its response_format's schema name, or StepChat without one.
const (
	StepCandidates = extract.StepCandidates
	StepDecisions  = extract.StepDecisions
	StepChat       = "chat"
	StepEmbeddings = "embeddings"
)

// Always, given to Script as a number of times, scripts every call until
// Reset.
const Always = -1

// maxRequestBytes bounds a request the server reads.
const maxRequestBytes = 4 << 20

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the API's base, ending in /v1, as ARQ's clients take it.
	URL string

	dim    int
	closed chan struct{}
	ids    atomic.Int64 // numbers completions

	mu      sync.Mutex
	scripts []script
	calls   map[string]int
	last    map[string][]byte
}

// Option configures a Server.
type Option func(*Server)

// Dimensions sets the length of the embeddings (64 unless given).
func Dimensions(n int) Option { return func(s *Server) { s.dim = n } }

// New starts a server that t's cleanup closes.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{dim: 64, closed: make(chan struct{}), calls: map[string]int{}, last: map[string][]byte{}}
	for _, o := range opts {
		o(s)
	}
	if s.dim < 1 {
		t.Fatalf("fakellm: %d dimensions", s.dim)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.chat)
	mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		close(s.closed) // ends delayed answers, so Close need not wait for them
		hs.Close()
	})
	s.URL = hs.URL + "/v1"
	return s
}

// Reply is a scripted answer. Status 0 is 200. With a 2xx status and no
// Content, Refusal or Body the answer is the default one (a Reply with
// only a Delay makes the model slow).
type Reply struct {
	Status  int
	Content string // the message's content, as is (a chat step)
	Refusal string // the message's refusal, with no content (a chat step)
	Body    string // the whole answer body, as is, instead of a completion
	// Delay holds the answer back; it ends early when the client gives
	// up, so a test of a deadline waits only for its own deadline.
	Delay time.Duration
}

type script struct {
	step  string
	times int
	reply Reply
}

// Script makes the next times calls of step (of every step when step is
// "") answer r; times is Always for every call until Reset. Scripts are
// used in the order given.
func (s *Server) Script(step string, times int, r Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts = append(s.scripts, script{step: step, times: times, reply: r})
}

// Reset drops every script, and the counts and requests recorded.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts = nil
	s.calls = map[string]int{}
	s.last = map[string][]byte{}
}

// Calls is how many calls of step the server has had.
func (s *Server) Calls(step string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[step]
}

// LastRequest is the body of the last call of step, nil if none.
func (s *Server) LastRequest(step string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.last[step])
}

// LastChat is the last call of a chat step, decoded.
func (s *Server) LastChat(step string) (ChatRequest, bool) {
	var req ChatRequest
	body := s.LastRequest(step)
	return req, body != nil && json.Unmarshal(body, &req) == nil
}

// record counts a call of step and takes the script that answers it, if
// any.
func (s *Server) record(step string, body []byte) (Reply, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[step]++
	s.last[step] = body
	for i, sc := range s.scripts {
		if sc.step != "" && sc.step != step {
			continue
		}
		if sc.times > 0 {
			s.scripts[i].times--
			if s.scripts[i].times == 0 {
				s.scripts = slices.Delete(s.scripts, i, i+1)
			}
		}
		return sc.reply, true
	}
	return Reply{}, false
}

// wait holds an answer back for d, less if the client gives up or the
// server closes; it reports whether to answer still.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
	case <-s.closed:
	}
	return false
}

// scripted answers r unless it asks for the default answer, and reports
// whether it answered.
func scripted(w http.ResponseWriter, r Reply, completion func(Reply) any) bool {
	status := r.Status
	if status == 0 {
		status = http.StatusOK
	}
	switch {
	case r.Body != "":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, r.Body)
	case status/100 != 2:
		apiError(w, status, "scripted failure")
	case r.Content != "" || r.Refusal != "":
		writeJSON(w, status, completion(r))
	default:
		return false
	}
	return true
}

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		apiError(w, http.StatusBadRequest, "read request: "+err.Error())
		return nil, false
	}
	return body, true
}

// apiError answers as OpenAI does when it refuses a request.
func apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/arq-memory/arq/extract"
)

// ChatRequest is a chat completions request, as far as the fake reads it.
type ChatRequest struct {
	Model          string          `json:"model"`
	Temperature    *float64        `json:"temperature"`
	Messages       []Message       `json:"messages"`
	ResponseFormat *ResponseFormat `json:"response_format"`
}

// Message is one message of a chat request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ResponseFormat asks for structured output.
type ResponseFormat struct {
	Type       string      `json:"type"`
	JSONSchema *JSONSchema `json:"json_schema"`
}

// JSONSchema is the schema an answer must fit, by name.
type JSONSchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict"`
	Schema json.RawMessage `json:"schema"`
}

// Step names the request's step: its schema's name, or StepChat.
func (r ChatRequest) Step() string {
	if r.ResponseFormat != nil && r.ResponseFormat.JSONSchema != nil {
		return r.ResponseFormat.JSONSchema.Name
	}
	return StepChat
}

// UserMessage is the content of the request's last user message.
func (r ChatRequest) UserMessage() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// TextAnswer is the default answer of a chat call without a schema (a
// summarizer's, say).
const TextAnswer = "The user talked with the assistant."

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var req ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		apiError(w, http.StatusBadRequest, "decode request: "+err.Error())
		return
	}
	reply, isScripted := s.record(req.Step(), body)
	if !s.wait(r, reply.Delay) {
		return
	}
	completion := func(rp Reply) any { return newCompletion(s.ids.Add(1), req.Model, rp.Content, rp.Refusal) }
	if isScripted && scripted(w, reply, completion) {
		return
	}
	content, status, err := answer(req)
	if err != nil {
		apiError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, completion(Reply{Content: content}))
}

// answer is the default model's answer to req, or an error and the
// status to answer it with.
func answer(req ChatRequest) (string, int, error) {
	switch {
	case req.Model == "":
		return "", http.StatusBadRequest, fmt.Errorf("model is required")
	case len(req.Messages) == 0:
		return "", http.StatusBadRequest, fmt.Errorf("messages are required")
	case req.ResponseFormat == nil:
		return TextAnswer, 0, nil
	}
	schema, err := checkFormat(req.ResponseFormat)
	if err != nil {
		return "", http.StatusBadRequest, err
	}
	var out any
	switch step := req.Step(); step {
	case StepCandidates:
		out = candidatesAnswer{Candidates: candidates(req.UserMessage())}
	case StepDecisions:
		var dr extract.DecideRequest
		if err := decodeStrict(req.UserMessage(), &dr); err != nil {
			return "", http.StatusBadRequest, fmt.Errorf("the fake reads a %s user message as extract.DecideRequest: %w", step, err)
		}
		out = decisionsAnswer{Decisions: decide(dr)}
	default:
		return "", http.StatusBadRequest, fmt.Errorf("the fake knows no schema %q", step)
	}
	content, err := json.Marshal(out)
	if err != nil {
		return "", http.StatusInternalServerError, err
	}
	// The default answers must fit the schema the client sent: if they
	// do not, the client and the fake disagree on the format.
	if err := fits(schema, content); err != nil {
		return "", http.StatusInternalServerError, fmt.Errorf("the fake's answer does not fit the request's schema: %w", err)
	}
	return string(content), 0, nil
}

// newCompletion is a chat completion of one choice.
func newCompletion(id int64, model, content, refusal string) any {
	msg := map[string]any{"role": "assistant", "content": content, "refusal": nil}
	if refusal != "" {
		msg["content"], msg["refusal"] = nil, refusal
	}
	return map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake-%d", id),
		"object":  "chat.completion",
		"created": 0,
		"model":   model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
	}
}

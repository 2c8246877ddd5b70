package client

import (
	"context"
	"net/http"
	"strconv"
)

// The options below set the API's headers on one call, as RequestEditorFn
// (pass them after the call's arguments) or on every call of a client
// (WithRequestEditorFn).

// WithKey sends key as the bearer credential: the admin key, an API key
// or a session's token.
func WithKey(key string) RequestEditorFn {
	return header("Authorization", "Bearer "+key)
}

// WithMinPosition makes a read wait (bounded, else 503) until the query
// tables hold the change of the command that answered position
// (Position of its answer): read-your-writes across calls and servers.
func WithMinPosition(position string) RequestEditorFn {
	return header("X-Arq-Min-Position", position)
}

// WithIdempotencyKey makes a POST safe to retry: a retry with the same key
// and body gets the first answer, and appends nothing again.
func WithIdempotencyKey(key string) RequestEditorFn {
	return header("Idempotency-Key", key)
}

// IfMatch makes a change apply only to the given version of the entity
// (its ETag); another version answers 412.
func IfMatch(version int) RequestEditorFn {
	return header("If-Match", `"`+strconv.Itoa(version)+`"`)
}

// RespondAsync makes a command answer 202 (Accepted) as soon as its
// events are in the log, without waiting for the query tables.
func RespondAsync() RequestEditorFn {
	return header("Prefer", "respond-async")
}

func header(name, value string) RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set(name, value)
		return nil
	}
}

// Position is the log position a command's answer carries
// (X-Arq-Position): give it to WithMinPosition to read the change.
func Position(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	return resp.Header.Get("X-Arq-Position")
}

// Version is the entity version an answer's ETag names, 0 without one.
func Version(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	etag := resp.Header.Get("ETag")
	if len(etag) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(etag[1 : len(etag)-1])
	return n
}

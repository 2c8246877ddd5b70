package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/arq-memory/arq/client"
)

// must fails the test on a call's transport error or problem answer.
func must(t *testing.T, resp *http.Response, body []byte, err error) {
	t.Helper()
	if err == nil {
		err = client.Check(resp, body)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// The generated Go client does what the README shows: a tenant's key
// registers a user, starts a session, appends messages, stores, changes,
// finds and reads back memories, and reads the context window; its
// problems come back as *client.Problem, its options carry If-Match,
// Idempotency-Key, Prefer and X-Arq-Min-Position. Every answer is checked
// against the document (Server.Client).
func TestGoClient(t *testing.T) {
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	key, _ := newKey(s, "acme", "", "read", "write")
	c, err := client.NewClientWithResponses(s.Base, client.WithHTTPClient(s.Client()),
		client.WithRequestEditorFn(client.WithKey(key)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	u, err := c.RegisterUserWithResponse(ctx, nil, client.RegisterUser{ExternalId: "ada-1", Name: "Ada"})
	must(t, u.HTTPResponse, u.Body, err)
	user := u.JSON201.Id

	sess, err := c.StartSessionWithResponse(ctx, user, nil, client.StartSession{Title: ptr("tea")})
	must(t, sess.HTTPResponse, sess.Body, err)
	if sess.JSON201.Token == nil || *sess.JSON201.Token == "" {
		t.Fatalf("a started session without its token: %s", sess.Body)
	}
	session := sess.JSON201.Id

	role := client.AppendMessagesRoleUser
	m, err := c.AppendMessagesWithResponse(ctx, session, nil, client.AppendMessages{Role: &role, Content: ptr("What tea do I like?")})
	must(t, m.HTTPResponse, m.Body, err)

	// A retried store with the same Idempotency-Key is answered as the
	// first, and stores nothing again.
	store := client.StoreMemory{Type: client.StoreMemoryTypeSemantic, Content: "Ada likes green tea", Tags: &[]string{"tea"}}
	first, err := c.StoreMemoryWithResponse(ctx, user, nil, store, client.WithIdempotencyKey("store-tea"))
	must(t, first.HTTPResponse, first.Body, err)
	again, err := c.StoreMemoryWithResponse(ctx, user, nil, store, client.WithIdempotencyKey("store-tea"))
	must(t, again.HTTPResponse, again.Body, err)
	if first.JSON201.Id != again.JSON201.Id {
		t.Fatalf("a retry stored a second memory: %s and %s", first.JSON201.Id, again.JSON201.Id)
	}
	memory := first.JSON201.Id

	// A change to a stale version is a 412 problem.
	stale, err := c.UpdateMemoryWithResponse(ctx, memory, nil, client.UpdateMemory{Content: ptr("Ada likes black tea")}, client.IfMatch(7))
	if err != nil {
		t.Fatal(err)
	}
	var p *client.Problem
	if err := client.Check(stale.HTTPResponse, stale.Body); !errors.As(err, &p) || p.Status != 412 {
		t.Fatalf("update of a stale version: %v, want a 412 problem", err)
	}

	// Asked to answer at once, the change comes back 202 with its
	// position; a read given the position sees it.
	upd, err := c.UpdateMemoryWithResponse(ctx, memory, nil, client.UpdateMemory{Content: ptr("Ada likes oolong")},
		client.IfMatch(client.Version(first.HTTPResponse)), client.RespondAsync())
	must(t, upd.HTTPResponse, upd.Body, err)
	if upd.StatusCode() != 202 || upd.JSON202 == nil || upd.JSON202.Position == "" {
		t.Fatalf("update with Prefer: respond-async: %d %s", upd.StatusCode(), upd.Body)
	}
	got, err := c.GetMemoryWithResponse(ctx, memory, nil, client.WithMinPosition(client.Position(upd.HTTPResponse)))
	must(t, got.HTTPResponse, got.Body, err)
	if got.JSON200.Content != "Ada likes oolong" || got.JSON200.Version != 2 {
		t.Fatalf("read after the change: %s", got.Body)
	}

	// Bad input is a 422 problem naming the field, and stores nothing.
	bad, err := c.StoreMemoryWithResponse(ctx, user, nil, client.StoreMemory{Type: "gossip", Content: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Check(bad.HTTPResponse, bad.Body); !errors.As(err, &p) || p.Status != 422 || p.Errors == nil || (*p.Errors)[0].Field != "type" {
		t.Fatalf("a memory of an unknown type: %v, want a 422 problem naming type", err)
	}

	hits, err := c.SearchMemoriesWithResponse(ctx, user, nil, client.SearchMemories{Query: ptr("oolong")})
	must(t, hits.HTTPResponse, hits.Body, err)
	if len(hits.JSON200.Items) != 1 || hits.JSON200.Items[0].Id != memory {
		t.Fatalf("search for oolong: %s", hits.Body)
	}

	w, err := c.GetContextWithResponse(ctx, session, &client.GetContextParams{MaxTokens: ptr(500), Query: ptr("tea")})
	must(t, w.HTTPResponse, w.Body, err)
	if len(w.JSON200.Messages) != 1 || len(w.JSON200.Memories) != 1 || w.JSON200.Summary != nil {
		t.Fatalf("context window: %s", w.Body)
	}

	h, err := c.MemoryHistoryWithResponse(ctx, memory)
	must(t, h.HTTPResponse, h.Body, err)
	if len(h.JSON200.Items) != 2 || h.JSON200.Items[1].EventType != "memory.updated" {
		t.Fatalf("history: %s", h.Body)
	}

	// Another tenant's key reaches none of it.
	newTenant(s, "globex")
	other, _ := newKey(s, "globex", "", "read", "write")
	gone, err := c.GetMemoryWithResponse(ctx, memory, nil, client.WithKey(other))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Check(gone.HTTPResponse, gone.Body); !errors.As(err, &p) || p.Status != 404 {
		t.Fatalf("another tenant's read of the memory: %v, want 404", err)
	}
}

func ptr[T any](v T) *T { return &v }

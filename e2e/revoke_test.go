package e2e

import (
	"testing"
	"time"

	"github.com/arq-memory/arq/internal/testserver"
	"github.com/arq-memory/arq/internal/testwait"
)

// Revoking a key ends its open event streams within a second, with an
// event revoked, in this process and in another over the same database;
// the key then answers 401. The streams of another key, and the admin
// key's, go on.
func TestRevokedKeyEndsItsStreams(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ARQ_ADMIN_KEY": "admin-secret"}
	s := testserver.Start(t, env)
	other := testserver.StartOn(t, s.URL, env)
	s.Key, other.Key = "admin-secret", "admin-secret"
	key := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "streamer", "scopes": []string{"read", "write"}}))
	kept := s.Must(201, s.Do("POST", "/v1/admin/keys", map[string]any{"name": "kept", "scopes": []string{"read"}})).Str("key")
	uid := s.Must(201, s.Do("POST", "/v1/users", map[string]any{"external_id": "rev", "name": "R"})).Str("id")
	sid := s.Must(201, s.Do("POST", "/v1/users/"+uid+"/sessions", map[string]any{})).Str("id")

	auth := "Bearer " + key.Str("key")
	revoked := map[string]<-chan sseEvent{
		"log from the start":      subscribe(s, t, "/v1/events/stream?after=0.0", "Authorization", auth),
		"live log":                subscribe(s, t, "/v1/events/stream", "Authorization", auth),
		"session":                 subscribe(s, t, "/v1/sessions/"+sid+"/stream", "Authorization", auth),
		"live log, other process": subscribe(other, t, "/v1/events/stream", "Authorization", auth),
		"session, other process":  subscribe(other, t, "/v1/sessions/"+sid+"/stream", "Authorization", auth),
	}
	kept1 := subscribe(s, t, "/v1/events/stream?type=message.appended", "Authorization", "Bearer "+kept)
	admin := subscribe(other, t, "/v1/events/stream?type=message.appended", "Authorization", "Bearer admin-secret")

	// The streams are open and live: a message reaches them.
	s.Key = key.Str("key")
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "before"}))
	for name, events := range revoked {
		await(t, events, name+": the message before", func(e sseEvent) bool { return e.event == "message.appended" })
	}

	// Revoked through the other process, the key's streams end in both.
	other.Must(204, other.Do("DELETE", "/v1/admin/keys/"+key.Str("id"), nil))
	for name, events := range revoked {
		var seen []string
		testwait.Eventually(t, 3*time.Second, name+": the stream ends with an event revoked", func() (bool, error) {
			for {
				select {
				case e, open := <-events:
					if !open {
						return len(seen) > 0 && seen[len(seen)-1] == "revoked", nil
					}
					seen = append(seen, e.event)
				default:
					return false, nil
				}
			}
		})
	}
	isProblem(t, s.Do("GET", "/v1/users", nil), 401, "")
	isProblem(t, s.Do("GET", "/v1/events/stream", nil), 401, "")

	// Another key's stream, and the admin key's, go on.
	s.Key = "admin-secret"
	s.Must(201, s.Do("POST", "/v1/sessions/"+sid+"/messages", map[string]any{"role": "user", "content": "after"}))
	for name, events := range map[string]<-chan sseEvent{"kept key": kept1, "admin key": admin} {
		await(t, events, name+": the message after", func(e sseEvent) bool {
			return e.event == "message.appended" && dataField(e, "content") == "after"
		})
	}
}

// A stream opened with a session's token ends, with an event ended, when
// the session is closed or its time to live runs out: the token opens
// nothing after that, and what it opened ends with it.
func TestSessionTokenStreamEndsWithItsSession(t *testing.T) {
	t.Parallel()
	s := startTenanted(t, nil)
	newTenant(s, "acme")
	key, _ := newKey(s, "acme", "", "read", "write")
	a := as{s, key}
	uid := a.must(201, "POST", "/v1/users", map[string]any{"external_id": "tok", "name": "T"}).Str("id")
	closing := a.must(201, "POST", "/v1/users/"+uid+"/sessions", map[string]any{})
	expiring := a.must(201, "POST", "/v1/users/"+uid+"/sessions", map[string]any{"ttl_seconds": 2})
	streams := map[string]<-chan sseEvent{
		"closed":  subscribe(s, t, "/v1/sessions/"+closing.Str("id")+"/stream", "Authorization", "Bearer "+closing.Str("token")),
		"expired": subscribe(s, t, "/v1/sessions/"+expiring.Str("id")+"/stream", "Authorization", "Bearer "+expiring.Str("token")),
	}
	// Open and live: a message reaches the first.
	a.must(201, "POST", "/v1/sessions/"+closing.Str("id")+"/messages", map[string]any{"role": "user", "content": "hello"})
	await(t, streams["closed"], "the message", func(e sseEvent) bool { return e.event == "message.appended" })

	a.must(200, "POST", "/v1/sessions/"+closing.Str("id")+"/close", nil)
	for name, events := range streams {
		var last sseEvent
		testwait.Eventually(t, 10*time.Second, name+": the stream ends with an event ended", func() (bool, error) {
			for {
				select {
				case e, open := <-events:
					if !open {
						return last.event == "ended", nil
					}
					last = e
				default:
					return false, nil
				}
			}
		})
	}
}

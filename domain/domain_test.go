package domain_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/arq-memory/arq/domain"
)

// words counts whitespace-separated words: enough to see counts recorded.
type words struct{}

func (words) Count(s string) int { return len(strings.Fields(s)) }

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// fold applies events as a stream would, version 1 first.
func fold(t *testing.T, apply func(domain.Event, int, time.Time), events []domain.Event) {
	t.Helper()
	for i, e := range events {
		// Round-trip through JSON, as the log does.
		raw, err := json.Marshal(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		back, err := domain.DecodeEvent(e.Type, domain.SchemaVersion(e.Type), raw)
		if err != nil {
			t.Fatal(err)
		}
		apply(back, i+1, now)
	}
}

func fields(err error) []string {
	var v *domain.ValidationError
	if !errors.As(err, &v) {
		return nil
	}
	var out []string
	for _, f := range v.Fields {
		out = append(out, f.Field)
	}
	return out
}

func registered(t *testing.T) *domain.User {
	t.Helper()
	evs, err := domain.Register(domain.RegisterUser{UserID: domain.NewID(), Tenant: "default", ExternalID: "ada", Name: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
	u := &domain.User{}
	fold(t, u.Apply, evs)
	return u
}

func TestRegisterValidatesEveryField(t *testing.T) {
	t.Parallel()
	_, err := domain.Register(domain.RegisterUser{UserID: domain.NewID(), Name: " ", Email: "nope", Metadata: map[string]any{"x": strings.Repeat("a", domain.MaxMetadataBytes)}})
	if !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	got := strings.Join(fields(err), ",")
	if got != "external_id,name,email,metadata" {
		t.Fatalf("fields = %s", got)
	}
}

func TestUserLifecycle(t *testing.T) {
	t.Parallel()
	u := registered(t)
	if !u.Exists() || u.Version() != 1 || u.Name() != "Ada" || u.Metadata() == nil {
		t.Fatalf("registered user: %+v", u)
	}
	name := "Ada L."
	evs, err := u.UpdateProfile(domain.UpdateProfile{Name: &name})
	if err != nil || len(evs) != 1 {
		t.Fatalf("update: %v %v", evs, err)
	}
	u.Apply(evs[0], 2, now)
	if u.Name() != name || u.Version() != 2 {
		t.Fatalf("after update: %s v%d", u.Name(), u.Version())
	}
	if evs, err := u.UpdateProfile(domain.UpdateProfile{Name: &name}); err != nil || evs != nil {
		t.Fatalf("no-op update decided %v, %v", evs, err)
	}
	evs, err = u.Delete()
	if err != nil {
		t.Fatal(err)
	}
	u.Apply(evs[0], 3, now)
	if u.Exists() {
		t.Fatal("deleted user exists")
	}
	if _, err := u.Delete(); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestSessionTokenAndLifecycle(t *testing.T) {
	t.Parallel()
	u := registered(t)
	evs, token, err := domain.Start(u, domain.StartSession{SessionID: domain.NewID(), Title: "t", TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	_, token2, _ := domain.Start(u, domain.StartSession{SessionID: domain.NewID()}, now)
	if !strings.HasPrefix(token, "arqs_") || len(token) < 5+22 || token == token2 {
		t.Fatalf("tokens %q %q", token, token2)
	}
	d := evs[0].Data.(domain.SessionStartedData)
	if d.TokenHash != domain.HashToken(token) || strings.Contains(d.TokenHash, token) || d.ExpiresAt == nil || !d.ExpiresAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("started: %+v", d)
	}
	s := &domain.Session{}
	fold(t, s.Apply, evs)
	if s.State(now) != "open" || s.State(now.Add(time.Hour)) != "expired" {
		t.Fatal("state by clock")
	}
	if err := s.AcceptsMessages(now.Add(2 * time.Hour)); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("expired session accepts messages: %v", err)
	}
	if _, err := s.Expire(now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("expire before due: %v", err)
	}
	ext, err := s.Extend(2*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(ext[0], 2, now)
	if s.State(now.Add(90*time.Minute)) != "open" {
		t.Fatal("extension not applied")
	}
	// An extension never shortens the session.
	if shorter, err := s.Extend(time.Minute, now); err != nil || len(shorter) != 0 {
		t.Fatalf("a shorter extension decided %v, %v; want nothing", shorter, err)
	}
	cl, err := s.Close(now)
	if err != nil {
		t.Fatal(err)
	}
	s.Apply(cl[0], 3, now)
	if _, err := s.Close(now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("close twice: %v", err)
	}
	if _, err := domain.AppendMessages(s, []domain.NewMessage{{MessageID: domain.NewID(), Role: "user", Content: "hi"}}, words{}, now); !errors.Is(err, domain.ErrConflict) {
		t.Fatalf("append to closed: %v", err)
	}
}

func TestAppendMessagesValidatesAndCounts(t *testing.T) {
	t.Parallel()
	u := registered(t)
	evs, _, _ := domain.Start(u, domain.StartSession{SessionID: domain.NewID()}, now)
	s := &domain.Session{}
	fold(t, s.Apply, evs)
	_, err := domain.AppendMessages(s, []domain.NewMessage{
		{MessageID: domain.NewID(), Role: "user", Content: "ok"},
		{MessageID: domain.NewID(), Role: "narrator", Content: ""},
	}, words{}, now)
	if got := strings.Join(fields(err), ","); got != "messages[1].role,messages[1].content" {
		t.Fatalf("fields = %s (%v)", got, err)
	}
	out, err := domain.AppendMessages(s, []domain.NewMessage{{MessageID: domain.NewID(), Role: "assistant", Content: "three word answer"}}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	d := out[0].Data.(domain.MessageAppendedData)
	if d.Tokens != 3 || d.SessionID != s.ID() || d.UserID != u.ID() || d.Metadata == nil {
		t.Fatalf("appended: %+v", d)
	}
	m := &domain.Message{}
	fold(t, m.Apply, out)
	content := "two words"
	ed, err := m.Edit(domain.EditMessage{Content: &content}, words{})
	if err != nil || ed[0].Data.(domain.MessageEditedData).Tokens != 2 {
		t.Fatalf("edit: %v %v", ed, err)
	}
	m.Apply(ed[0], 2, now)
	if _, err := m.Redact(strings.Repeat("x", domain.MaxReasonRunes+1)); strings.Join(fields(err), ",") != "reason" {
		t.Fatalf("redact with a long reason: %v", err)
	}
	rd, _ := m.Redact("pii")
	m.Apply(rd[0], 3, now)
	if m.Exists() {
		t.Fatal("redacted message exists")
	}
	if _, err := m.Edit(domain.EditMessage{Content: &content}, words{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("edit redacted: %v", err)
	}
}

func TestMemoryLifecycleAndExpiry(t *testing.T) {
	t.Parallel()
	u := registered(t)
	imp := 1.5
	_, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "dream", Content: "", Importance: &imp, SourceSessionID: "x", TTL: time.Hour, ExpiresAt: &now}, words{}, now)
	if got := strings.Join(fields(err), ","); got != "type,content,importance,source_session_id,expires_at" {
		t.Fatalf("fields = %s", got)
	}
	evs, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "semantic", Content: "likes tea", Tags: []string{" Tea", "tea", "drinks"}, TTL: time.Minute}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	d := evs[0].Data.(domain.MemoryStoredData)
	if d.Importance != domain.DefaultImportance || strings.Join(d.Tags, ",") != "tea,drinks" || d.Tokens != 2 || d.ExpiresAt == nil {
		t.Fatalf("stored: %+v", d)
	}
	m := &domain.Memory{}
	fold(t, m.Apply, evs)
	if !m.Live(now) || m.Live(now.Add(time.Minute)) {
		t.Fatal("liveness by clock")
	}
	if _, err := m.Update(domain.UpdateMemory{Importance: &imp}, words{}, now); fields(err) == nil {
		t.Fatal("importance 1.5 accepted")
	}
	if _, err := m.Delete(now.Add(2 * time.Minute)); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("delete expired: %v", err)
	}
	ex, err := m.Expire(now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(ex[0], 2, now)
	if _, err := m.Expire(now.Add(time.Minute)); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("expire twice: %v", err)
	}
	if _, err := domain.DecodeEvent("memory.dreamt", 1, nil); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("unknown type: %v", err)
	}
}

// Clearing tags or metadata must survive the log's JSON round trip.
func TestUpdatesThatEmptyAFieldSurviveTheLog(t *testing.T) {
	t.Parallel()
	u := registered(t)
	evs, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "semantic", Content: "x", Tags: []string{"a"}, Metadata: map[string]any{"k": "v"}}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	m := &domain.Memory{}
	none := []string{}
	upd, err := func() ([]domain.Event, error) {
		fold(t, m.Apply, evs)
		return m.Update(domain.UpdateMemory{Tags: &none, Metadata: map[string]any{}}, words{}, now)
	}()
	if err != nil || len(upd) != 1 {
		t.Fatalf("update: %v %v", upd, err)
	}
	fold(t, m.Apply, append(evs, upd...))
	if len(m.Tags()) != 0 || len(m.Metadata()) != 0 {
		t.Fatalf("after clearing: tags %v metadata %v", m.Tags(), m.Metadata())
	}
}

// A memory.stored event written in schema version 1 (sources flat) reads
// in the current shape (sources under "source"); a version newer than
// this ARQ knows is refused.
func TestUpcastMemoryStoredFromVersion1(t *testing.T) {
	v1 := []byte(`{"memory_id":"m","user_id":"u","type":"semantic","content":"c","importance":0.5,"tags":[],"metadata":{},
		"source_session_id":"s1","source_message_id":"","tokens":1}`)
	e, err := domain.DecodeEvent(domain.MemoryStored, 1, v1)
	if err != nil {
		t.Fatal(err)
	}
	d := e.Data.(domain.MemoryStoredData)
	if d.Source == nil || d.Source.SessionID != "s1" || d.Source.MessageID != "" || d.Content != "c" {
		t.Fatalf("upcast: %+v", d)
	}
	if domain.SchemaVersion(domain.MemoryStored) != 2 || domain.SchemaVersion(domain.UserRegistered) != 1 {
		t.Fatal("schema versions")
	}
	if _, err := domain.DecodeEvent(domain.MemoryStored, 3, v1); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("version from the future: %v", err)
	}
}

// A session started without an expiry keeps none when extended.
func TestExtendingASessionWithoutExpiryKeepsNone(t *testing.T) {
	t.Parallel()
	evs, _, err := domain.Start(registered(t), domain.StartSession{SessionID: domain.NewID()}, now)
	if err != nil {
		t.Fatal(err)
	}
	s := &domain.Session{}
	fold(t, s.Apply, evs)
	if ext, err := s.Extend(time.Hour, now); err != nil || len(ext) != 0 || s.ExpiresAt() != nil {
		t.Fatalf("extending a session without expiry decided %v, %v", ext, err)
	}
}

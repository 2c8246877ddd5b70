package domain_test

import (
	"errors"
	"testing"

	"github.com/arq-memory/arq/domain"
)

// An erasure deletes the user, also one deleted before; a second one
// decides nothing; an erased user is refused every change as erased.
func TestUserErasureImpliesDeletionAndIsDecidedOnce(t *testing.T) {
	for _, deletedFirst := range []bool{false, true} {
		u := registered(t)
		version := u.Version()
		if deletedFirst {
			evs, err := u.Delete()
			if err != nil {
				t.Fatal(err)
			}
			version++
			u.Apply(evs[0], version, now)
		}
		evs, err := u.Erase(domain.ErasedOnRequest)
		if err != nil || len(evs) != 1 || evs[0].Type != domain.UserErased {
			t.Fatalf("erase (deleted first: %v): %v, %v", deletedFirst, evs, err)
		}
		version++
		u.Apply(evs[0], version, now)
		if u.Exists() || !u.Erased() || u.Name() != "" || u.ExternalID() != "" {
			t.Fatalf("erased user: exists %v, erased %v, name %q, external id %q", u.Exists(), u.Erased(), u.Name(), u.ExternalID())
		}
		if evs, err := u.Erase(domain.ErasedOnRequest); err != nil || len(evs) != 0 {
			t.Fatalf("second erasure: %v, %v; want nothing decided", evs, err)
		}
		if _, err := u.Delete(); !errors.Is(err, domain.ErrErased) {
			t.Fatalf("delete after erasure: %v, want ErrErased", err)
		}
		name := "Bea"
		if _, err := u.UpdateProfile(domain.UpdateProfile{Name: &name}); !errors.Is(err, domain.ErrErased) {
			t.Fatalf("update after erasure: %v, want ErrErased", err)
		}
	}
	if _, err := (&domain.User{}).Erase(domain.ErasedOnRequest); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("erase of no user: %v, want ErrNotFound", err)
	}
	if _, err := registered(t).Erase("because"); !errors.Is(err, domain.ErrInvalid) {
		t.Fatalf("erase for no known reason: %v, want ErrInvalid", err)
	}
}

// An erased message names what was erased with it and refuses edits and
// redactions as erased; a redacted one may be erased.
func TestMessageErasure(t *testing.T) {
	sess := &domain.Session{}
	sess.Apply(domain.Event{Type: domain.SessionStarted, Data: domain.SessionStartedData{SessionID: "s1", UserID: "u1"}}, 1, now)
	evs, err := domain.AppendMessages(sess, []domain.NewMessage{{MessageID: domain.NewID(), Role: "user", Content: "secret"}}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, redactFirst := range []bool{false, true} {
		m := &domain.Message{}
		fold(t, m.Apply, evs)
		m.SetSeq(7)
		if redactFirst {
			r, err := m.Redact("")
			if err != nil {
				t.Fatal(err)
			}
			m.Apply(r[0], 2, now)
		}
		erased, err := m.Erase(domain.ErasedForRetention, []string{"e1"}, []string{"snap1"})
		if err != nil || len(erased) != 1 {
			t.Fatalf("erase: %v, %v", erased, err)
		}
		d := erased[0].Data.(domain.MessageErasedData)
		if d.SessionID != "s1" || d.UserID != "u1" || d.Seq != 7 || d.Reason != domain.ErasedForRetention || d.Summaries[0] != "e1" || d.Snapshots[0] != "snap1" {
			t.Fatalf("message.erased: %+v", d)
		}
		m.Apply(erased[0], m.Version()+1, now)
		if m.Exists() || !m.Erased() || m.Content() != "" {
			t.Fatalf("erased message: exists %v, erased %v, content %q", m.Exists(), m.Erased(), m.Content())
		}
		content := "again"
		if _, err := m.Edit(domain.EditMessage{Content: &content}, words{}); !errors.Is(err, domain.ErrErased) {
			t.Fatalf("edit after erasure: %v, want ErrErased", err)
		}
		if _, err := m.Redact(""); !errors.Is(err, domain.ErrErased) {
			t.Fatalf("redact after erasure: %v, want ErrErased", err)
		}
		if again, err := m.Erase(domain.ErasedOnRequest, []string{"e1"}, []string{"snap1"}); err != nil || len(again) != 0 {
			t.Fatalf("second erasure: %v, %v; want nothing decided", again, err)
		}
		// A snapshot made from the text before it was erased everywhere,
		// found by a later erasure, is recorded then, alone.
		late, err := m.Erase(domain.ErasedOnRequest, []string{"e1"}, []string{"snap1", "snap2"})
		if err != nil || len(late) != 1 {
			t.Fatalf("erasure finding a late snapshot: %v, %v", late, err)
		}
		if d := late[0].Data.(domain.MessageErasedData); len(d.Summaries) != 0 || len(d.Snapshots) != 1 || d.Snapshots[0] != "snap2" {
			t.Fatalf("erasure finding a late snapshot records %+v; want snap2 alone", d)
		}
	}
}

// An erased memory refuses every change as erased; a deleted one may be
// erased, once.
func TestMemoryErasure(t *testing.T) {
	u := registered(t)
	evs, err := domain.StoreNew(u, domain.StoreMemory{MemoryID: domain.NewID(), Type: "semantic", Content: "likes tea"}, words{}, now)
	if err != nil {
		t.Fatal(err)
	}
	m := &domain.Memory{}
	fold(t, m.Apply, evs)
	del, err := m.Delete(now)
	if err != nil {
		t.Fatal(err)
	}
	m.Apply(del[0], 2, now)
	erased, err := m.Erase(domain.ErasedOnRequest)
	if err != nil || len(erased) != 1 || erased[0].Data.(domain.MemoryErasedData).UserID != u.ID() {
		t.Fatalf("erase of a deleted memory: %v, %v", erased, err)
	}
	m.Apply(erased[0], 3, now)
	if m.Exists() || !m.Erased() || m.Content() != "" || m.Tags() != nil {
		t.Fatalf("erased memory: exists %v, erased %v, content %q", m.Exists(), m.Erased(), m.Content())
	}
	content := "likes coffee"
	if _, err := m.Update(domain.UpdateMemory{Content: &content}, words{}, now); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("update after erasure: %v, want ErrErased", err)
	}
	if _, err := m.Delete(now); !errors.Is(err, domain.ErrErased) {
		t.Fatalf("delete after erasure: %v, want ErrErased", err)
	}
	if again, err := m.Erase(domain.ErasedOnRequest); err != nil || len(again) != 0 {
		t.Fatalf("second erasure: %v, %v; want nothing decided", again, err)
	}
}

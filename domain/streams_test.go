package domain_test

import (
	"errors"
	"testing"

	"github.com/arq-memory/arq/domain"
)

// ParseStreamID reads back every stream id StreamID makes, and refuses
// what no domain stream is called.
func TestParseStreamID(t *testing.T) {
	for _, c := range []struct {
		in       string
		wantType string
		wantID   string
		ok       bool
	}{
		{"memory-01J9Z8Y7X6W5V4T3S2R1Q0P9N8", domain.StreamMemory, "01J9Z8Y7X6W5V4T3S2R1Q0P9N8", true},
		{"user-01J9Z8Y7X6W5V4T3S2R1Q0P9N8", domain.StreamUser, "01J9Z8Y7X6W5V4T3S2R1Q0P9N8", true},
		{"session-s1", domain.StreamSession, "s1", true},
		{"message-m1", domain.StreamMessage, "m1", true},
		{"message_log-s1", domain.StreamMessageLog, "s1", true},
		{"summary-s1", domain.StreamSummary, "s1", true},
		{"context_snapshot-c1", domain.StreamSnapshot, "c1", true},
		// An external id may hold a "-": only the first one ends the type.
		{"user_external_id-acme:jo-ann", domain.StreamExternalID, "acme:jo-ann", true},
		{"", "", "", false},
		{"memory", "", "", false},
		{"memory-", "", "", false},
		{"-01J9Z8Y7X6W5V4T3S2R1Q0P9N8", "", "", false},
		{"memories-m1", "", "", false},
		{"Memory-m1", "", "", false},
		{"raw-1", "", "", false},
		{"memory_m1", "", "", false},
	} {
		typ, id, err := domain.ParseStreamID(c.in)
		switch {
		case c.ok && err != nil:
			t.Errorf("ParseStreamID(%q): %v", c.in, err)
		case c.ok && (typ != c.wantType || id != c.wantID):
			t.Errorf("ParseStreamID(%q) = %q, %q; want %q, %q", c.in, typ, id, c.wantType, c.wantID)
		case c.ok && domain.StreamID(typ, id) != c.in:
			t.Errorf("StreamID(ParseStreamID(%q)) = %q", c.in, domain.StreamID(typ, id))
		case !c.ok && !errors.Is(err, domain.ErrInvalid):
			t.Errorf("ParseStreamID(%q) = %q, %q, %v; want ErrInvalid", c.in, typ, id, err)
		}
	}
}

// ParseEntityStreamID reads the streams of users, sessions, messages and
// memories as their kind and id, and refuses the other streams.
func TestParseEntityStreamID(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind domain.Kind
		id   string
		ok   bool
	}{
		{"user-u1", domain.KindUser, "u1", true},
		{"session-s1", domain.KindSession, "s1", true},
		{"message-m1", domain.KindMessage, "m1", true},
		{"memory-01J9Z8Y7X6W5V4T3S2R1Q0P9N8", domain.KindMemory, "01J9Z8Y7X6W5V4T3S2R1Q0P9N8", true},
		{"message_log-s1", domain.Kind{}, "", false},
		{"summary-s1", domain.Kind{}, "", false},
		{"context_snapshot-c1", domain.Kind{}, "", false},
		{"user_external_id-acme:jo", domain.Kind{}, "", false},
		{"memory-", domain.Kind{}, "", false},
		{"nope", domain.Kind{}, "", false},
	} {
		kind, id, err := domain.ParseEntityStreamID(c.in)
		switch {
		case c.ok && (err != nil || kind != c.kind || id != c.id):
			t.Errorf("ParseEntityStreamID(%q) = %v, %q, %v; want %v, %q", c.in, kind, id, err, c.kind, c.id)
		case c.ok && kind.StreamID(id) != c.in:
			t.Errorf("%v.StreamID(%q) = %q, want %q", kind, id, kind.StreamID(id), c.in)
		case !c.ok && (!errors.Is(err, domain.ErrInvalid) || !kind.IsZero()):
			t.Errorf("ParseEntityStreamID(%q) = %v, %q, %v; want ErrInvalid", c.in, kind, id, err)
		}
	}
}

// ParseKind knows the four kinds by their names and nothing else.
func TestParseKind(t *testing.T) {
	for _, k := range []domain.Kind{domain.KindUser, domain.KindSession, domain.KindMessage, domain.KindMemory} {
		got, err := domain.ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	for _, s := range []string{"", "users", "summary", "message_log", "USER"} {
		if k, err := domain.ParseKind(s); !errors.Is(err, domain.ErrInvalid) || !k.IsZero() {
			t.Errorf("ParseKind(%q) = %v, %v; want ErrInvalid", s, k, err)
		}
	}
}

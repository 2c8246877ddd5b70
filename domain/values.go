package domain

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// ID identifies a user, session, message or memory: a ULID, so ids sort by
// creation time.
type ID struct{ s string }

// NewID makes a fresh ID.
func NewID() ID { return ID{ulid.Make().String()} }

// ParseID reads an ID; anything but a ULID is refused.
func ParseID(s string) (ID, error) {
	u, err := ulid.ParseStrict(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %q is not a ULID", ErrInvalid, s)
	}
	return ID{u.String()}, nil
}

func (id ID) String() string { return id.s }

// IsZero reports whether id was never set.
func (id ID) IsZero() bool { return id.s == "" }

// MemoryType is what kind of memory a memory is.
type MemoryType struct{ s string }

// The memory types.
var (
	Working    = MemoryType{"working"}
	Episodic   = MemoryType{"episodic"}
	Semantic   = MemoryType{"semantic"}
	Procedural = MemoryType{"procedural"}
)

// ParseMemoryType reads a memory type by name.
func ParseMemoryType(s string) (MemoryType, error) {
	for _, t := range []MemoryType{Working, Episodic, Semantic, Procedural} {
		if t.s == s {
			return t, nil
		}
	}
	return MemoryType{}, fmt.Errorf("%w: memory type %q (want working, episodic, semantic or procedural)", ErrInvalid, s)
}

func (t MemoryType) String() string { return t.s }

// Role is who wrote a message.
type Role struct{ s string }

// The message roles.
var (
	RoleUser      = Role{"user"}
	RoleAssistant = Role{"assistant"}
	RoleSystem    = Role{"system"}
	RoleTool      = Role{"tool"}
)

// ParseRole reads a role by name.
func ParseRole(s string) (Role, error) {
	for _, r := range []Role{RoleUser, RoleAssistant, RoleSystem, RoleTool} {
		if r.s == s {
			return r, nil
		}
	}
	return Role{}, fmt.Errorf("%w: role %q (want user, assistant, system or tool)", ErrInvalid, s)
}

func (r Role) String() string { return r.s }

// Importance is how much a memory matters, from 0 to 1.
type Importance struct{ v float64 }

// ParseImportance reads an importance; it must lie in [0, 1].
func ParseImportance(v float64) (Importance, error) {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return Importance{}, fmt.Errorf("%w: importance %v (want 0 to 1)", ErrInvalid, v)
	}
	return Importance{v}, nil
}

// Float is the importance as a number.
func (i Importance) Float() float64 { return i.v }

// Limits on input, so one request cannot bloat the log.
const (
	MaxContentBytes = 256 << 10
	MaxNameRunes    = 200
	MaxTitleRunes   = 500
	MaxReasonRunes  = 500
	// MaxQueryWords bounds a search query: Postgres's text search
	// recurses once per word, and every word must match.
	MaxQueryWords    = 256
	MaxTags          = 50
	MaxTagRunes      = 64
	MaxMetadataBytes = 16 << 10
	MaxExternalID    = 200
)

// NormalizeTags trims, lower-cases and de-duplicates tags, keeping their
// order, and checks their number and length.
func NormalizeTags(tags []string) ([]string, error) {
	if len(tags) > MaxTags {
		return nil, fmt.Errorf("%w: %d tags (at most %d)", ErrInvalid, len(tags), MaxTags)
	}
	out := make([]string, 0, len(tags))
	seen := map[string]bool{}
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			return nil, fmt.Errorf("%w: empty tag", ErrInvalid)
		}
		if utf8.RuneCountInString(t) > MaxTagRunes {
			return nil, fmt.Errorf("%w: tag %q longer than %d characters", ErrInvalid, t, MaxTagRunes)
		}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out, nil
}

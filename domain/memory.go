package domain

import (
	"slices"
	"time"
)

// DefaultImportance is a memory's importance when the caller names none.
const DefaultImportance = 0.5

// StoreMemory is the command that stores a memory of a user.
type StoreMemory struct {
	MemoryID                         ID
	Type, Content                    string
	Importance                       *float64
	Tags                             []string
	Metadata                         map[string]any
	SourceSessionID, SourceMessageID string
	// TTL or ExpiresAt (not both) make the memory expire.
	TTL       time.Duration
	ExpiresAt *time.Time
	// Embedding is optional; EmbeddingDim is the deployment's dimension
	// (0 accepts any length), set by the command service.
	Embedding    []float64
	EmbeddingDim int
	// Provenance, Reason and Supersedes are an extraction's (see
	// extraction.go); a client's command has none.
	Provenance *Provenance
	Reason     string
	Supersedes string
}

// StoreNew decides storing a memory.
func StoreNew(user *User, cmd StoreMemory, tc TokenCounter, now time.Time) ([]Event, error) {
	if user == nil || !user.Exists() {
		return nil, notFoundf("user")
	}
	v := &ValidationError{}
	typ, err := ParseMemoryType(cmd.Type)
	if err != nil {
		v.Add("type", "must be working, episodic, semantic or procedural")
	}
	checkContent(v, "content", cmd.Content)
	importance := DefaultImportance
	if cmd.Importance != nil {
		if _, err := ParseImportance(*cmd.Importance); err != nil {
			v.Add("importance", "must be from 0 to 1")
		}
		importance = *cmd.Importance
	}
	tags, err := NormalizeTags(cmd.Tags)
	if err != nil {
		v.Add("tags", "%s", trimKind(err))
	}
	md := checkMetadata(v, "metadata", cmd.Metadata)
	for _, f := range []struct{ name, id string }{{"source_session_id", cmd.SourceSessionID}, {"source_message_id", cmd.SourceMessageID}} {
		if f.id != "" {
			if _, err := ParseID(f.id); err != nil {
				v.Add(f.name, "must be a ULID")
			}
		}
	}
	expires := expiry(v, cmd.TTL, cmd.ExpiresAt, now)
	var embedding []float32
	if cmd.Embedding != nil {
		embedding = checkEmbedding(v, "embedding", cmd.Embedding, cmd.EmbeddingDim)
	}
	if cmd.MemoryID.IsZero() {
		v.Add("memory_id", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if tags == nil {
		tags = []string{}
	}
	var source *MemorySource
	if cmd.SourceSessionID != "" || cmd.SourceMessageID != "" {
		source = &MemorySource{SessionID: cmd.SourceSessionID, MessageID: cmd.SourceMessageID}
	}
	return []Event{{Type: MemoryStored, Data: MemoryStoredData{
		MemoryID: cmd.MemoryID.String(), UserID: user.ID(), Type: typ.String(), Content: cmd.Content,
		Importance: importance, Tags: tags, Metadata: md, Source: source,
		Tokens: tc.Count(cmd.Content), ExpiresAt: expires, Embedding: embedding,
		Provenance: cmd.Provenance, Reason: cmd.Reason, Supersedes: cmd.Supersedes,
	}}}, nil
}

// expiry validates a TTL or an expiry time and returns the expiry.
func expiry(v *ValidationError, ttl time.Duration, at *time.Time, now time.Time) *time.Time {
	switch {
	case ttl != 0 && at != nil:
		v.Add("expires_at", "give ttl_seconds or expires_at, not both")
	case ttl < 0:
		v.Add("ttl_seconds", "must be positive")
	case ttl > 0:
		t := now.Add(ttl).UTC()
		return &t
	case at != nil && !at.After(now):
		v.Add("expires_at", "must be in the future")
	case at != nil:
		t := at.UTC()
		return &t
	}
	return nil
}

func trimKind(err error) string {
	s := err.Error()
	if p := ErrInvalid.Error() + ": "; len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// Memory is something an assistant learned about a user.
type Memory struct {
	id, userID, typ, content         string
	importance                       float64
	tags                             []string
	metadata                         map[string]any
	sourceSessionID, sourceMessageID string
	tokens, version                  int
	expiresAt                        *time.Time
	embedding                        []float32
	deleted, expired, erased         bool
	createdAt, updatedAt             time.Time
	// provenance is the stored event's, when an extraction made it;
	// supersededBy and validUntil are set once a newer memory replaced it.
	provenance   *Provenance
	supersededBy string
	validUntil   *time.Time
}

// Apply folds one event of the memory's stream; it never fails.
func (m *Memory) Apply(e Event, version int, at time.Time) {
	switch d := e.Data.(type) {
	case MemoryStoredData:
		m.id, m.userID, m.typ, m.content, m.importance = d.MemoryID, d.UserID, d.Type, d.Content, d.Importance
		m.tags, m.metadata = slices.Clone(d.Tags), copyMap(d.Metadata)
		m.tokens, m.expiresAt, m.embedding = d.Tokens, d.ExpiresAt, slices.Clone(d.Embedding)
		if d.Source != nil {
			m.sourceSessionID, m.sourceMessageID = d.Source.SessionID, d.Source.MessageID
		}
		m.provenance = d.Provenance
		m.createdAt = at
	case MemoryUpdatedData:
		if d.Content != nil {
			m.content = *d.Content
		}
		if d.Tokens != nil {
			m.tokens = *d.Tokens
		}
		if d.Importance != nil {
			m.importance = *d.Importance
		}
		if d.Tags != nil {
			m.tags = slices.Clone(*d.Tags)
		}
		if d.Metadata != nil {
			m.metadata = copyMap(d.Metadata)
		}
		if d.ExpiresAt != nil {
			m.expiresAt = d.ExpiresAt
		}
		if d.ClearExpiry {
			m.expiresAt = nil
		}
		if d.Embedding != nil {
			m.embedding = slices.Clone(d.Embedding)
		}
		if d.ClearEmbedding {
			m.embedding = nil
		}
	case MemoryDeletedData:
		m.deleted = true
	case MemorySupersededData:
		until := d.ValidUntil
		m.supersededBy, m.validUntil = d.SupersededBy, &until
	case MemoryExpiredData:
		m.expired = true
	case MemoryErasedData:
		m.erased = true
		m.content, m.tags, m.metadata, m.embedding = "", nil, nil, nil
	}
	m.version, m.updatedAt = version, at
}

// ID, UserID, Type, Content, Importance, Tags, Metadata, SourceSessionID,
// SourceMessageID, Tokens, ExpiresAt, Embedding, Version, CreatedAt and
// UpdatedAt read the memory's state.
func (m *Memory) ID() string               { return m.id }
func (m *Memory) UserID() string           { return m.userID }
func (m *Memory) Type() string             { return m.typ }
func (m *Memory) Content() string          { return m.content }
func (m *Memory) Importance() float64      { return m.importance }
func (m *Memory) Tags() []string           { return slices.Clone(m.tags) }
func (m *Memory) Metadata() map[string]any { return copyMap(m.metadata) }
func (m *Memory) SourceSessionID() string  { return m.sourceSessionID }
func (m *Memory) SourceMessageID() string  { return m.sourceMessageID }
func (m *Memory) Tokens() int              { return m.tokens }
func (m *Memory) ExpiresAt() *time.Time    { return m.expiresAt }
func (m *Memory) Embedding() []float32     { return slices.Clone(m.embedding) }
func (m *Memory) Version() int             { return m.version }
func (m *Memory) CreatedAt() time.Time     { return m.createdAt }
func (m *Memory) UpdatedAt() time.Time     { return m.updatedAt }

// Provenance is the extraction that stored the memory; nil for a
// memory a client stored.
func (m *Memory) Provenance() *Provenance { return m.provenance }

// SupersededBy and ValidUntil say which memory replaced this one and
// when; "" and nil while it stands.
func (m *Memory) SupersededBy() string   { return m.supersededBy }
func (m *Memory) ValidUntil() *time.Time { return m.validUntil }

// Exists reports a stored memory neither deleted, superseded, recorded
// expired nor erased.
func (m *Memory) Exists() bool {
	return m.id != "" && !m.deleted && !m.expired && !m.erased && m.supersededBy == ""
}

// Erased reports a memory whose text was erased (see personal.go).
func (m *Memory) Erased() bool { return m.erased }

// gone is the error of a command on a memory that does not live (any
// more): ErrErased for an erased one, which is final, else ErrNotFound.
func (m *Memory) gone() error {
	if m.erased {
		return erasedf("memory %s", m.id)
	}
	return notFoundf("memory %s", m.id)
}

// Live reports a memory that exists and whose time has not run out.
func (m *Memory) Live(now time.Time) bool {
	return m.Exists() && (m.expiresAt == nil || now.Before(*m.expiresAt))
}

// UpdateMemory changes the fields that are set. A new content without a
// new Embedding drops the old embedding, which no longer describes it.
type UpdateMemory struct {
	Content      *string
	Importance   *float64
	Tags         *[]string
	Metadata     map[string]any
	TTL          *time.Duration
	ExpiresAt    *time.Time
	ClearExpiry  bool
	Embedding    []float64
	EmbeddingDim int
	// Provenance and Reason are an extraction's; recorded with a change,
	// never a change alone.
	Provenance *Provenance
	Reason     string
}

// Update decides a change of a live memory; no change decides nothing.
func (m *Memory) Update(cmd UpdateMemory, tc TokenCounter, now time.Time) ([]Event, error) {
	if !m.Live(now) {
		return nil, m.gone()
	}
	v := &ValidationError{}
	d := MemoryUpdatedData{}
	changed := false
	if cmd.Content != nil {
		checkContent(v, "content", *cmd.Content)
		if *cmd.Content != m.content {
			n := tc.Count(*cmd.Content)
			d.Content, d.Tokens, changed = cmd.Content, &n, true
		}
	}
	if cmd.Importance != nil {
		if _, err := ParseImportance(*cmd.Importance); err != nil {
			v.Add("importance", "must be from 0 to 1")
		} else if *cmd.Importance != m.importance {
			d.Importance, changed = cmd.Importance, true
		}
	}
	if cmd.Tags != nil {
		tags, err := NormalizeTags(*cmd.Tags)
		if err != nil {
			v.Add("tags", "%s", trimKind(err))
		} else if !slices.Equal(tags, m.tags) {
			if tags == nil {
				tags = []string{}
			}
			d.Tags, changed = &tags, true
		}
	}
	if cmd.Metadata != nil {
		d.Metadata, changed = checkMetadata(v, "metadata", cmd.Metadata), true
	}
	if cmd.ClearExpiry {
		if cmd.TTL != nil || cmd.ExpiresAt != nil {
			v.Add("clear_expiry", "cannot go with ttl_seconds or expires_at")
		} else if m.expiresAt != nil {
			d.ClearExpiry, changed = true, true
		}
	} else if cmd.TTL != nil || cmd.ExpiresAt != nil {
		ttl := time.Duration(0)
		if cmd.TTL != nil {
			ttl = *cmd.TTL
			if ttl <= 0 {
				v.Add("ttl_seconds", "must be positive")
			}
		}
		if e := expiry(v, ttl, cmd.ExpiresAt, now); e != nil {
			d.ExpiresAt, changed = e, true
		}
	}
	if cmd.Embedding != nil {
		if e := checkEmbedding(v, "embedding", cmd.Embedding, cmd.EmbeddingDim); e != nil && !slices.Equal(e, m.embedding) {
			d.Embedding, changed = e, true
		}
	} else if d.Content != nil && m.embedding != nil {
		d.ClearEmbedding = true
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !changed {
		return nil, nil
	}
	d.Provenance, d.Reason = cmd.Provenance, cmd.Reason
	return []Event{{Type: MemoryUpdated, Data: d}}, nil
}

// Delete decides deleting a live memory.
func (m *Memory) Delete(now time.Time) ([]Event, error) {
	if !m.Live(now) {
		return nil, m.gone()
	}
	return []Event{{Type: MemoryDeleted, Data: MemoryDeletedData{}}}, nil
}

// Expire decides recording a memory's expiry, once its time has run out.
func (m *Memory) Expire(now time.Time) ([]Event, error) {
	if !m.Exists() {
		return nil, m.gone()
	}
	if m.expiresAt == nil || now.Before(*m.expiresAt) {
		return nil, conflictf("memory %s is not due to expire", m.id)
	}
	return []Event{{Type: MemoryExpired, Data: MemoryExpiredData{ExpiredAt: m.expiresAt.UTC()}}}, nil
}

// Erase decides recording that a memory's text was erased (its data key
// deleted, see personal.go). A deleted or expired memory may be erased;
// an erased one decides nothing, so that erasing twice is harmless.
func (m *Memory) Erase(reason string) ([]Event, error) {
	if m.id == "" {
		return nil, notFoundf("memory")
	}
	if err := checkErasure(reason); err != nil {
		return nil, err
	}
	if m.erased {
		return nil, nil
	}
	return []Event{{Type: MemoryErased, Data: MemoryErasedData{UserID: m.userID, Reason: reason}}}, nil
}

package domain

import (
	"fmt"
	"slices"
	"time"
)

// MaxMessagesPerAppend bounds one append of messages.
const MaxMessagesPerAppend = 100

// NewMessage is one message of an AppendMessages command.
type NewMessage struct {
	MessageID           ID
	Role, Content, Name string
	Metadata            map[string]any
	// Embedding is optional; EmbeddingDim is the deployment's dimension
	// (0 accepts any length), set by the command service.
	Embedding    []float64
	EmbeddingDim int
}

// AppendMessages decides appending messages to an open session, counting
// each message's tokens.
func AppendMessages(s *Session, msgs []NewMessage, tc TokenCounter, now time.Time) ([]Event, error) {
	if err := s.AcceptsMessages(now); err != nil {
		return nil, err
	}
	v := &ValidationError{}
	if len(msgs) == 0 || len(msgs) > MaxMessagesPerAppend {
		v.Add("messages", "must hold 1 to %d messages", MaxMessagesPerAppend)
		return nil, v
	}
	events := make([]Event, 0, len(msgs))
	for i, m := range msgs {
		field := func(name string) string {
			if len(msgs) == 1 {
				return name
			}
			return fmt.Sprintf("messages[%d].%s", i, name)
		}
		role, err := ParseRole(m.Role)
		if err != nil {
			v.Add(field("role"), "must be user, assistant, system or tool")
		}
		checkContent(v, field("content"), m.Content)
		checkText(v, field("name"), m.Name, false, MaxNameRunes)
		md := checkMetadata(v, field("metadata"), m.Metadata)
		var embedding []float32
		if m.Embedding != nil {
			embedding = checkEmbedding(v, field("embedding"), m.Embedding, m.EmbeddingDim)
		}
		if m.MessageID.IsZero() {
			v.Add(field("message_id"), "is required")
		}
		events = append(events, Event{Type: MessageAppended, Data: MessageAppendedData{
			MessageID: m.MessageID.String(), SessionID: s.ID(), UserID: s.UserID(), Role: role.String(),
			Content: m.Content, Name: m.Name, Metadata: md, Tokens: tc.Count(m.Content), Embedding: embedding,
		}})
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return events, nil
}

// Message is one message of a session: its appended event (from the
// session's log) then its own stream's edits and redaction.
type Message struct {
	id, sessionID, userID, role, content, name string
	metadata                                   map[string]any
	embedding                                  []float32
	seq, tokens, version                       int
	redacted, erased                           bool
	// erasedWith are the summaries and snapshots erased with it.
	erasedWith           map[string]bool
	createdAt, updatedAt time.Time
}

// Apply folds one event of the message's history; it never fails.
func (m *Message) Apply(e Event, version int, at time.Time) {
	switch d := e.Data.(type) {
	case MessageAppendedData:
		m.id, m.sessionID, m.userID, m.role = d.MessageID, d.SessionID, d.UserID, d.Role
		m.content, m.name, m.tokens = d.Content, d.Name, d.Tokens
		m.metadata = copyMap(d.Metadata)
		m.embedding = slices.Clone(d.Embedding)
		m.createdAt = at
	case MessageEditedData:
		m.content, m.tokens, m.embedding = d.Content, d.Tokens, slices.Clone(d.Embedding)
		if d.Metadata != nil {
			m.metadata = copyMap(d.Metadata)
		}
	case MessageRedactedData:
		m.redacted = true
	case MessageErasedData:
		m.erased = true
		m.content, m.name, m.metadata, m.embedding = "", "", nil, nil
		if m.erasedWith == nil {
			m.erasedWith = map[string]bool{}
		}
		for _, id := range append(slices.Clone(d.Summaries), d.Snapshots...) {
			m.erasedWith[id] = true
		}
	}
	m.version, m.updatedAt = version, at
}

// SetSeq records the message's sequence number in its session: the version
// of its appended event in the session's message log.
func (m *Message) SetSeq(seq int) { m.seq = seq }

// ID, SessionID, UserID, Seq, Role, Content, Name, Metadata, Tokens,
// Embedding, Version, CreatedAt, UpdatedAt and Redacted read the message's
// state.
func (m *Message) ID() string               { return m.id }
func (m *Message) SessionID() string        { return m.sessionID }
func (m *Message) UserID() string           { return m.userID }
func (m *Message) Seq() int                 { return m.seq }
func (m *Message) Role() string             { return m.role }
func (m *Message) Content() string          { return m.content }
func (m *Message) Name() string             { return m.name }
func (m *Message) Metadata() map[string]any { return copyMap(m.metadata) }
func (m *Message) Tokens() int              { return m.tokens }
func (m *Message) Embedding() []float32     { return slices.Clone(m.embedding) }
func (m *Message) Version() int             { return m.version }
func (m *Message) CreatedAt() time.Time     { return m.createdAt }
func (m *Message) UpdatedAt() time.Time     { return m.updatedAt }
func (m *Message) Redacted() bool           { return m.redacted }

// Exists reports an appended message neither redacted nor erased.
func (m *Message) Exists() bool { return m.id != "" && !m.redacted && !m.erased }

// Erased reports a message whose text was erased (see personal.go).
func (m *Message) Erased() bool { return m.erased }

// gone is the error of a command on a message that does not exist (any
// more): ErrErased for an erased one, which is final, else ErrNotFound.
func (m *Message) gone() error {
	if m.erased {
		return erasedf("message %s", m.id)
	}
	return notFoundf("message %s", m.id)
}

// EditMessage replaces a message's content and, when set, its metadata
// and embedding. A new content without a new Embedding drops the old
// embedding, which no longer describes it.
type EditMessage struct {
	Content      *string
	Metadata     map[string]any
	Embedding    []float64
	EmbeddingDim int
}

// Edit decides an edit; the event carries the full content and its token
// count. No change decides nothing.
func (m *Message) Edit(cmd EditMessage, tc TokenCounter) ([]Event, error) {
	if !m.Exists() {
		return nil, m.gone()
	}
	v := &ValidationError{}
	content := m.content
	if cmd.Content != nil {
		checkContent(v, "content", *cmd.Content)
		content = *cmd.Content
	}
	var md map[string]any
	if cmd.Metadata != nil {
		md = checkMetadata(v, "metadata", cmd.Metadata)
	}
	embedding := m.embedding
	switch {
	case cmd.Embedding != nil:
		embedding = checkEmbedding(v, "embedding", cmd.Embedding, cmd.EmbeddingDim)
	case content != m.content:
		embedding = nil
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if content == m.content && md == nil && slices.Equal(embedding, m.embedding) {
		return nil, nil
	}
	return []Event{{Type: MessageEdited, Data: MessageEditedData{Content: content, Tokens: tc.Count(content), Metadata: md, Embedding: slices.Clone(embedding)}}}, nil
}

// Redact decides removing a message from every read.
func (m *Message) Redact(reason string) ([]Event, error) {
	if !m.Exists() {
		return nil, m.gone()
	}
	v := &ValidationError{}
	checkText(v, "reason", reason, false, MaxReasonRunes)
	if err := v.Err(); err != nil {
		return nil, err
	}
	return []Event{{Type: MessageRedacted, Data: MessageRedactedData{Reason: reason}}}, nil
}

// Erase decides recording that a message's text was erased (its data key
// deleted, see personal.go) with the summaries and the context snapshots
// that held it: the ids of the session.summarized events and of the
// snapshots whose data keys were deleted with it. A redacted message may
// be erased. An erased one decides nothing, so that erasing twice is
// harmless, unless summaries or snapshots made from its text before it
// was erased everywhere turned up since: then it records those.
func (m *Message) Erase(reason string, summaries, snapshots []string) ([]Event, error) {
	if m.id == "" {
		return nil, notFoundf("message")
	}
	if err := checkErasure(reason); err != nil {
		return nil, err
	}
	if m.erased {
		fresh := func(id string) bool { return m.erasedWith[id] }
		summaries = slices.DeleteFunc(slices.Clone(summaries), fresh)
		snapshots = slices.DeleteFunc(slices.Clone(snapshots), fresh)
		if len(summaries) == 0 && len(snapshots) == 0 {
			return nil, nil
		}
	}
	return []Event{{Type: MessageErased, Data: MessageErasedData{
		SessionID: m.sessionID, UserID: m.userID, Seq: m.seq, Reason: reason,
		Summaries: slices.Clone(summaries), Snapshots: slices.Clone(snapshots),
	}}}, nil
}

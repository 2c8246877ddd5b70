package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"time"
)

// Session is a conversation of a user, folded from its stream (its
// lifecycle; its messages live in its message log).
type Session struct {
	id, userID, title, tokenHash string
	metadata                     map[string]any
	ttl                          time.Duration
	expiresAt                    *time.Time
	closed, expired              bool
	version                      int
	createdAt, updatedAt         time.Time
}

// Apply folds one event of the session's stream; it never fails.
func (s *Session) Apply(e Event, version int, at time.Time) {
	switch d := e.Data.(type) {
	case SessionStartedData:
		s.id, s.userID, s.title, s.tokenHash = d.SessionID, d.UserID, d.Title, d.TokenHash
		s.metadata = copyMap(d.Metadata)
		s.ttl = time.Duration(d.TTLSeconds) * time.Second
		s.expiresAt = d.ExpiresAt
		s.createdAt = at
	case SessionExtendedData:
		t := d.ExpiresAt
		s.expiresAt = &t
	case SessionClosedData:
		s.closed = true
	case SessionExpiredData:
		s.expired = true
	}
	s.version, s.updatedAt = version, at
}

// ID, UserID, Title, Metadata, TokenHash, ExpiresAt, Version, CreatedAt and
// UpdatedAt read the session's state.
func (s *Session) ID() string               { return s.id }
func (s *Session) UserID() string           { return s.userID }
func (s *Session) Title() string            { return s.title }
func (s *Session) Metadata() map[string]any { return copyMap(s.metadata) }
func (s *Session) TokenHash() string        { return s.tokenHash }
func (s *Session) ExpiresAt() *time.Time    { return s.expiresAt }
func (s *Session) Version() int             { return s.version }
func (s *Session) CreatedAt() time.Time     { return s.createdAt }
func (s *Session) UpdatedAt() time.Time     { return s.updatedAt }

// Exists reports a started session.
func (s *Session) Exists() bool { return s.id != "" }

// State is "open", "closed" or "expired"; a session is expired from its
// expiry time on, before any expiry event is recorded.
func (s *Session) State(now time.Time) string {
	switch {
	case s.closed:
		return "closed"
	case s.expired, s.expiresAt != nil && !now.Before(*s.expiresAt):
		return "expired"
	}
	return "open"
}

// StartSession is the command that starts a session.
type StartSession struct {
	SessionID ID
	Title     string
	Metadata  map[string]any
	// TTL is the session's time to live; 0 means it never expires.
	TTL time.Duration
}

// Start decides a session's start and makes its secret token, shown once:
// the event keeps only the token's hash.
func Start(user *User, cmd StartSession, now time.Time) ([]Event, string, error) {
	if user == nil || !user.Exists() {
		return nil, "", notFoundf("user")
	}
	v := &ValidationError{}
	checkText(v, "title", cmd.Title, false, MaxTitleRunes)
	md := checkMetadata(v, "metadata", cmd.Metadata)
	if cmd.TTL < 0 {
		v.Add("ttl_seconds", "must not be negative")
	}
	if cmd.SessionID.IsZero() {
		v.Add("session_id", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	token, err := newToken()
	if err != nil {
		return nil, "", err
	}
	d := SessionStartedData{
		SessionID: cmd.SessionID.String(), UserID: user.ID(), Title: cmd.Title, Metadata: md,
		TokenHash: HashToken(token), TTLSeconds: int64(cmd.TTL / time.Second),
	}
	if cmd.TTL > 0 {
		t := now.Add(cmd.TTL).UTC()
		d.ExpiresAt = &t
	}
	return []Event{{Type: SessionStarted, Data: d}}, token, nil
}

// newToken is 256 random bits, URL-safe, prefixed so a leaked one is easy
// to recognise.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "arqs_" + base64.RawURLEncoding.EncodeToString(b), nil
}

// HashToken is how a session token is kept: its SHA-256, hex.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func (s *Session) mustBeOpen(now time.Time) error {
	if !s.Exists() {
		return notFoundf("session %s", s.id)
	}
	if st := s.State(now); st != "open" {
		return conflictf("session %s is %s", s.id, st)
	}
	return nil
}

// Extend decides a new expiry, now + ttl, when that is later than the one
// the session has: an extension never shortens a session, and a session
// without an expiry keeps none. Otherwise it decides nothing.
func (s *Session) Extend(ttl time.Duration, now time.Time) ([]Event, error) {
	if err := s.mustBeOpen(now); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		v := &ValidationError{}
		v.Add("ttl_seconds", "must be positive")
		return nil, v
	}
	until := now.Add(ttl).UTC()
	if s.expiresAt == nil || !until.After(*s.expiresAt) {
		return nil, nil
	}
	return []Event{{Type: SessionExtended, Data: SessionExtendedData{ExpiresAt: until}}}, nil
}

// Close decides closing an open session.
func (s *Session) Close(now time.Time) ([]Event, error) {
	if err := s.mustBeOpen(now); err != nil {
		return nil, err
	}
	return []Event{{Type: SessionClosed, Data: SessionClosedData{}}}, nil
}

// Expire decides recording a session's expiry, once its time has run out.
func (s *Session) Expire(now time.Time) ([]Event, error) {
	if !s.Exists() {
		return nil, notFoundf("session %s", s.id)
	}
	if s.closed || s.expired || s.expiresAt == nil || now.Before(*s.expiresAt) {
		return nil, conflictf("session %s is not due to expire", s.id)
	}
	return []Event{{Type: SessionExpired, Data: SessionExpiredData{ExpiredAt: s.expiresAt.UTC()}}}, nil
}

// AcceptsMessages refuses messages to a missing, closed or expired session.
func (s *Session) AcceptsMessages(now time.Time) error { return s.mustBeOpen(now) }

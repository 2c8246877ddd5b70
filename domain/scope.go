package domain

// DefaultTenant is the tenant of the data recorded before tenants, and of
// callers that name none: a deployment that never makes a tenant works in
// this one alone.
const DefaultTenant = "default"

// Owner is whom an entity belongs to: its tenant and user, and for what
// lives in a session (the session itself, its messages, summaries and
// context snapshots) that session. An entity's owner never changes, so
// it may be remembered for as long as the id is.
type Owner struct {
	Tenant, UserID, SessionID string
}

// Scope is what a caller may reach: one tenant, within it one user (a key
// narrowed to the user an assistant serves), and within that one session
// (the session's own token). An empty Tenant reaches every tenant: the
// system's own callers, such as the expiry worker or an operator's CLI.
type Scope struct {
	Tenant, UserID, SessionID string
}

// Reaches reports whether the caller may see and change what o owns.
// What it may not reach, it must not learn exists: callers answer such an
// entity as one not found.
func (s Scope) Reaches(o Owner) bool {
	return (s.Tenant == "" || s.Tenant == o.Tenant) &&
		(s.UserID == "" || s.UserID == o.UserID) &&
		(s.SessionID == "" || s.SessionID == o.SessionID)
}

// Narrowed reports whether the scope is less than a whole tenant: such a
// caller may not list, search or follow the tenant's data as a whole.
func (s Scope) Narrowed() bool { return s.UserID != "" || s.SessionID != "" }

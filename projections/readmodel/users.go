package readmodel

import (
	"context"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/projections"
)

// Users projects users.
type Users struct{}

// Name is "users".
func (Users) Name() string { return "users" }

// Tables is the users table.
func (Users) Tables() []string { return []string{"users"} }

// EventTypes are the types Apply acts on (see projections.Selective).
func (Users) EventTypes() []string {
	return []string{domain.UserRegistered, domain.UserProfileUpdated, domain.UserDeleted, domain.UserErased}
}

// Apply folds user events into the users table. An erased user is deleted:
// reads do not find them, and no personal value of theirs is left. (Their
// events read erased meanwhile, in a rebuild, write empty values until
// the erasure comes.)
func (Users) Apply(_ context.Context, tx projections.Tx, e eventstore.Recorded) error {
	switch e.Type {
	case domain.UserRegistered, domain.UserProfileUpdated, domain.UserDeleted:
	case domain.UserErased:
		tx.Exec(`DELETE FROM users WHERE id = $1`, entityID(e))
		return nil
	default:
		return nil
	}
	ev, err := decode(e)
	if err != nil {
		return err
	}
	switch d := ev.Data.(type) {
	case domain.UserRegisteredData:
		tx.Exec(`INSERT INTO users (id, tenant, external_id, name, email, metadata, version, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`,
			d.UserID, d.Tenant, d.ExternalID, d.Name, d.Email, jsonOf(d.Metadata), e.Version, e.RecordedAt)
	case domain.UserProfileUpdatedData:
		tx.Exec(`UPDATE users SET name = coalesce($2, name), email = coalesce($3, email),
			metadata = coalesce($4, metadata), version = $5, updated_at = $6 WHERE id = $1`,
			entityID(e), d.Name, d.Email, jsonOrNil(d.Metadata), e.Version, e.RecordedAt)
	case domain.UserDeletedData:
		tx.Exec(`DELETE FROM users WHERE id = $1`, entityID(e))
	}
	return nil
}

package domain

import "time"

// User is a person an assistant remembers, folded from its stream.
type User struct {
	id, tenant, externalID, name, email string
	metadata                            map[string]any
	deleted, erased                     bool
	version                             int
	createdAt, updatedAt                time.Time
}

// Apply folds one event of the user's stream; it never fails.
func (u *User) Apply(e Event, version int, at time.Time) {
	switch d := e.Data.(type) {
	case UserRegisteredData:
		u.id, u.tenant, u.externalID, u.name, u.email = d.UserID, d.Tenant, d.ExternalID, d.Name, d.Email
		u.metadata = copyMap(d.Metadata)
		u.createdAt = at
	case UserProfileUpdatedData:
		if d.Name != nil {
			u.name = *d.Name
		}
		if d.Email != nil {
			u.email = *d.Email
		}
		if d.Metadata != nil {
			u.metadata = copyMap(d.Metadata)
		}
	case UserDeletedData:
		u.deleted = true
	case UserErasedData:
		// Erasing implies deleting; what the profile held is gone.
		u.deleted, u.erased = true, true
		u.externalID, u.name, u.email, u.metadata = "", "", "", nil
	}
	u.version, u.updatedAt = version, at
}

// ID, Tenant, ExternalID, Name, Email, Metadata, Version, CreatedAt and
// UpdatedAt read the user's state.
func (u *User) ID() string               { return u.id }
func (u *User) Tenant() string           { return u.tenant }
func (u *User) ExternalID() string       { return u.externalID }
func (u *User) Name() string             { return u.name }
func (u *User) Email() string            { return u.email }
func (u *User) Metadata() map[string]any { return copyMap(u.metadata) }
func (u *User) Version() int             { return u.version }
func (u *User) CreatedAt() time.Time     { return u.createdAt }
func (u *User) UpdatedAt() time.Time     { return u.updatedAt }

// Exists reports a registered user not deleted.
func (u *User) Exists() bool { return u.id != "" && !u.deleted }

// Erased reports a user whose personal data was erased (see personal.go).
func (u *User) Erased() bool { return u.erased }

// RegisterUser is the command that registers a user.
type RegisterUser struct {
	UserID                          ID
	Tenant, ExternalID, Name, Email string
	Metadata                        map[string]any
}

// Register decides a user's registration.
func Register(cmd RegisterUser) ([]Event, error) {
	v := &ValidationError{}
	checkText(v, "external_id", cmd.ExternalID, true, MaxExternalID)
	checkText(v, "name", cmd.Name, true, MaxNameRunes)
	checkEmail(v, "email", cmd.Email)
	md := checkMetadata(v, "metadata", cmd.Metadata)
	if cmd.UserID.IsZero() {
		v.Add("user_id", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	return []Event{{Type: UserRegistered, Data: UserRegisteredData{
		UserID: cmd.UserID.String(), Tenant: cmd.Tenant, ExternalID: cmd.ExternalID,
		Name: cmd.Name, Email: cmd.Email, Metadata: md,
	}}}, nil
}

// UpdateProfile changes the fields that are set; Metadata replaces the map.
type UpdateProfile struct {
	Name, Email *string
	Metadata    map[string]any
}

// UpdateProfile decides a profile change; no change decides nothing.
func (u *User) UpdateProfile(cmd UpdateProfile) ([]Event, error) {
	if u.erased {
		return nil, erasedf("user %s", u.id)
	}
	if !u.Exists() {
		return nil, notFoundf("user %s", u.id)
	}
	v := &ValidationError{}
	d := UserProfileUpdatedData{}
	if cmd.Name != nil {
		checkText(v, "name", *cmd.Name, true, MaxNameRunes)
		if *cmd.Name != u.name {
			d.Name = cmd.Name
		}
	}
	if cmd.Email != nil {
		checkEmail(v, "email", *cmd.Email)
		if *cmd.Email != u.email {
			d.Email = cmd.Email
		}
	}
	if cmd.Metadata != nil {
		d.Metadata = checkMetadata(v, "metadata", cmd.Metadata)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if d.Name == nil && d.Email == nil && d.Metadata == nil {
		return nil, nil
	}
	return []Event{{Type: UserProfileUpdated, Data: d}}, nil
}

// Delete decides a user's deletion.
func (u *User) Delete() ([]Event, error) {
	if u.erased {
		return nil, erasedf("user %s", u.id)
	}
	if !u.Exists() {
		return nil, notFoundf("user %s", u.id)
	}
	return []Event{{Type: UserDeleted, Data: UserDeletedData{}}}, nil
}

// Erase decides recording that a user's personal data was erased (their
// data keys deleted, see personal.go), which deletes them too. A user
// deleted before may be erased; one erased before decides nothing, so
// that erasing twice is harmless.
func (u *User) Erase(reason string) ([]Event, error) {
	if u.id == "" {
		return nil, notFoundf("user")
	}
	if err := checkErasure(reason); err != nil {
		return nil, err
	}
	if u.erased {
		return nil, nil
	}
	return []Event{{Type: UserErased, Data: UserErasedData{Reason: reason}}}, nil
}

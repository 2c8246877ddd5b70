package keys

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arq-memory/arq/domain"
)

// Limits are a tenant's own rate limits: requests a second per key, and
// the burst; nil keeps the deployment's.
type Limits struct {
	Rate  *int `json:"rate_limit"`
	Burst *int `json:"rate_burst"`
}

// Tenant is a tenant as the admin API lists it.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Limits              // flattened: rate_limit, rate_burst
	CreatedAt time.Time `json:"created_at"`
}

// tenantID is what a tenant's id may be: it is seen in keys, events and
// logs, so short, lower case and plain.
var tenantID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// maxLimit bounds a tenant's rate and burst: a million requests a second
// is no limit in practice, and keeps the numbers sane.
const maxLimit = 1_000_000

// checkLimits adds to v what is wrong with l.
func checkLimits(v *domain.ValidationError, l Limits) {
	if l.Rate != nil && (*l.Rate < 0 || *l.Rate > maxLimit) {
		v.Add("rate_limit", "must be from 0 (no limit) to %d requests a second", maxLimit)
	}
	if l.Burst != nil && (*l.Burst < 0 || *l.Burst > maxLimit) {
		v.Add("rate_burst", "must be from 0 to %d", maxLimit)
	}
}

// CreateTenant makes a tenant. A wrong id or name is a
// *domain.ValidationError, a taken id domain.ErrConflict.
func (s *Store) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	v := &domain.ValidationError{}
	if !tenantID.MatchString(t.ID) {
		v.Add("id", "must be 1 to 63 of a-z, 0-9, _ and -, starting with a letter or digit")
	}
	if t.Name == "" || len(t.Name) > 200 {
		v.Add("name", "is required, at most 200 characters")
	}
	checkLimits(v, t.Limits)
	if err := v.Err(); err != nil {
		return Tenant{}, err
	}
	out, err := scanTenant(s.db.QueryRow(ctx, `INSERT INTO tenants (id, name, rate_limit, rate_burst) VALUES ($1, $2, $3, $4)
		RETURNING id, name, rate_limit, rate_burst, created_at`, t.ID, t.Name, t.Rate, t.Burst))
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return Tenant{}, fmt.Errorf("%w: tenant %s exists", domain.ErrConflict, t.ID)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("store tenant: %w", err)
	}
	return out, nil
}

// Tenants lists every tenant, by id.
func (s *Store) Tenants(ctx context.Context) ([]Tenant, error) {
	rows, err := s.db.Query(ctx, `SELECT id, name, rate_limit, rate_burst, created_at FROM tenants ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Tenant, error) { return scanTenant(row) })
	if err != nil {
		return nil, fmt.Errorf("list tenants: %w", err)
	}
	return ts, nil
}

// GetTenant reads one tenant; an unknown one is domain.ErrNotFound.
func (s *Store) GetTenant(ctx context.Context, id string) (Tenant, error) {
	t, err := scanTenant(s.db.QueryRow(ctx, `SELECT id, name, rate_limit, rate_burst, created_at FROM tenants WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: tenant %s", domain.ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("read tenant %s: %w", id, err)
	}
	return t, nil
}

// SetLimits replaces a tenant's rate limits (nil: the deployment's); its
// keys hold them from their next request.
func (s *Store) SetLimits(ctx context.Context, id string, l Limits) (Tenant, error) {
	v := &domain.ValidationError{}
	checkLimits(v, l)
	if err := v.Err(); err != nil {
		return Tenant{}, err
	}
	t, err := scanTenant(s.db.QueryRow(ctx, `UPDATE tenants SET rate_limit = $2, rate_burst = $3 WHERE id = $1
		RETURNING id, name, rate_limit, rate_burst, created_at`, id, l.Rate, l.Burst))
	if errors.Is(err, pgx.ErrNoRows) {
		return Tenant{}, fmt.Errorf("%w: tenant %s", domain.ErrNotFound, id)
	}
	if err != nil {
		return Tenant{}, fmt.Errorf("set limits of tenant %s: %w", id, err)
	}
	return t, nil
}

func scanTenant(row pgx.Row) (Tenant, error) {
	var t Tenant
	err := row.Scan(&t.ID, &t.Name, &t.Rate, &t.Burst, &t.CreatedAt)
	return t, err
}

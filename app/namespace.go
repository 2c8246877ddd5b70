package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/queries"
)

// DeploymentID reads the identity the database was given when it was first
// migrated (migration 00021): the same for every process on it and across
// restarts, another for every other database that was migrated apart.
func DeploymentID(ctx context.Context, db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (string, error) {
	var id string
	err := db.QueryRow(ctx, `SELECT id::text FROM deployment`).Scan(&id)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return "", fmt.Errorf("read deployment identity: the database is not migrated (run arq migrate): %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("read deployment identity: %w", err)
	}
	return id, nil
}

// RedisNamespace is the part of every Redis key and of the live topic that
// keeps apart the deployments sharing one Redis (cache.Namespace makes it).
func RedisNamespace(database, id string) string { return cache.Namespace(database, id) }

// LiveTopic is the Redis Streams topic of the deployment namespace names
// (cache.LiveTopic makes it).
func LiveTopic(namespace string) string { return cache.LiveTopic(namespace) }

// wireRedis connects the parts that keep keys in Redis (the entity cache,
// live updates) under this deployment's namespace; database is the name
// of the database the app is connected to.
func (a *App) wireRedis(ctx context.Context, database string) error {
	var err error
	if a.namespace, err = a.redisNamespace(ctx, database); err != nil {
		return err
	}
	a.entities = a.reader
	if a.cfg.CacheEntities {
		a.entities = cache.NewEntities(a.reader, a.cache, a.namespace)
	}
	queryKey, err := a.vault.DerivedKey(ctx, "window cache query names")
	if err != nil {
		return err
	}
	a.windows = cache.NewWindows(queries.NewWindows(a.reader, a.tokens), a.cache, a.namespace).KeyedBy(queryKey)
	return a.wireLive(a.namespace)
}

// redisNamespace is this deployment's namespace in Redis (see
// RedisNamespace); database is the name of the database the app is
// connected to, unless Options.DatabaseName says otherwise.
func (a *App) redisNamespace(ctx context.Context, database string) (string, error) {
	id, err := DeploymentID(ctx, a.pool)
	if err != nil {
		return "", err
	}
	if a.opt.DatabaseName != "" {
		database = a.opt.DatabaseName
	}
	return cache.Namespace(database, id), nil
}

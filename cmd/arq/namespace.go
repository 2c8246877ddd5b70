package main

import (
	"context"

	"github.com/arq-memory/arq/cache"
)

// redisNamespace is the part of every Redis key and of the live topic that
// keeps apart the deployments sharing one Redis: the name of the
// database. It is the one place that format is made.
func redisNamespace(database string) string {
	return database
}

// liveTopic is the Redis Streams topic of the deployment namespace names.
func liveTopic(namespace string) string {
	return "arq:" + namespace + ":events"
}

// wireRedis connects the parts that keep keys in Redis (the entity cache,
// live updates) under this deployment's namespace; database is the name
// of the database the app is connected to.
func (a *App) wireRedis(_ context.Context, database string) error {
	a.namespace = redisNamespace(database)
	a.entities = a.reader
	if a.cfg.CacheEntities {
		a.entities = cache.NewEntities(a.reader, a.cache, a.namespace)
	}
	return a.wireLive(a.namespace)
}

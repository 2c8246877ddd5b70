package main

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/arq-memory/arq/app"
)

// liveTopicOf is the live topic of the deployment on the database at url,
// for tests that delete it when they end (the machine's Redis is shared
// and kept between runs); "" when it cannot be read.
func liveTopicOf(url string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	id, err := app.DeploymentID(ctx, conn)
	if err != nil {
		return ""
	}
	return app.LiveTopic(app.RedisNamespace(conn.Config().Database, id))
}

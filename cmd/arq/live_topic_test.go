package main

import "github.com/jackc/pgx/v5"

// liveTopicOf is the live topic of the deployment on the database at url,
// for tests that delete it when they end (the machine's Redis is shared
// and kept between runs); "" when it cannot be read.
func liveTopicOf(url string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return ""
	}
	return liveTopic(redisNamespace(cfg.Database))
}

package main

import (
	"flag"

	"github.com/arq-memory/arq/app"
)

// bindCommon registers the flags every command shares; a flag overrides
// its environment variable.
func bindCommon(c *app.Config, fs *flag.FlagSet) {
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL, "Postgres URL (ARQ_DATABASE_URL)")
	fs.Func("log-level", "debug, info, warn or error (ARQ_LOG_LEVEL)", func(s string) error {
		return c.LogLevel.UnmarshalText([]byte(s))
	})
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json or text (ARQ_LOG_FORMAT)")
}

func bindServe(c *app.Config, fs *flag.FlagSet) {
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (ARQ_REDIS_URL)")
	fs.DurationVar(&c.ReadYourWrites, "read-your-writes-timeout", c.ReadYourWrites, "how long a command waits for the query tables before answering 202 (ARQ_READ_YOUR_WRITES_TIMEOUT)")
	fs.Func("cors-origins", "comma-separated origins allowed to call the API from a browser (ARQ_CORS_ORIGINS)", func(s string) error {
		c.CORSOrigins = app.SplitList(s)
		return nil
	})
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address the HTTP API listens on (ARQ_HTTP_ADDR)")
	fs.IntVar(&c.DBMaxConns, "db-max-conns", c.DBMaxConns, "largest number of Postgres connections for commands and reads (ARQ_DB_MAX_CONNS)")
	fs.IntVar(&c.AppendBatches, "append-batches", c.AppendBatches, "batches of concurrent appends written at once; 0 writes each alone (ARQ_APPEND_BATCHES)")
}

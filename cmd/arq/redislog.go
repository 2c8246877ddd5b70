package main

import "context"

// quietRedis takes go-redis's own log lines (a failed dial each time Redis
// is down) and drops them: the cache and the live relay warn once per
// outage through slog, and go-redis's plain lines would break JSON logs.
// go-redis has one logger per process, so main sets it once.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

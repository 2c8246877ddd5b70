package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/cache"
	"github.com/arq-memory/arq/live"
)

// liveMaxlen bounds the live topic, the one Redis key ARQ writes without
// a time to live: each publish trims the stream to about this many of its
// newest events (XADD MAXLEN ~). The topic only carries new events to
// the instances; the log keeps every one.
const liveMaxlen = 10000

// wireLive connects live updates: a relay publishing the log to the Redis
// Streams topic of this deployment (namespace, see cache.Namespace), and a
// fan-out subscriber feeding this instance's hub. Redis being down at
// start is no error: the relay then delivers in this instance, and both
// recover when Redis does.
func (a *App) wireLive(namespace string) error {
	a.hub = live.NewHub()
	opt, err := redis.ParseURL(a.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("redis url %q: %w", a.cfg.RedisURL, err)
	}
	opt.DialTimeout = 200 * time.Millisecond
	opt.WriteTimeout = 500 * time.Millisecond
	opt.MaxRetries = 0
	opt.DialerRetries = 1
	client := redis.NewClient(opt)
	// Watermill's own chatter (including a read error every 500ms while
	// Redis is down) goes to debug; the relay and cache warn once.
	wlog := watermill.NewSlogLoggerWithLevelMapping(a.log.With("component", "live"), map[slog.Level]slog.Level{
		slog.LevelError: slog.LevelDebug, slog.LevelWarn: slog.LevelDebug, slog.LevelInfo: slog.LevelDebug,
	})
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client, DefaultMaxlen: liveMaxlen}, wlog)
	if err != nil {
		_ = client.Close()
		return fmt.Errorf("live publisher: %w", err)
	}
	// One topic per deployment (see cache.Namespace), so deployments (and
	// tests) sharing a Redis never see each other's events.
	topic := cache.LiveTopic(namespace)
	a.relay = live.NewRelay(a.pool, a.store, a.notifier, pub, topic, a.hub, a.log)
	a.feed = func(ctx context.Context) error {
		return live.FeedFrom(ctx, client, topic, a.hub, wlog, a.log, time.Second)
	}
	a.closeLive = func() {
		_ = pub.Close()
		_ = client.Close()
	}
	return nil
}

package live

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/redis/go-redis/v9"

	"github.com/arq-memory/arq/eventstore"
)

// prevKey is the metadata of a message on the live topic that names the
// event the relay sent before it, so that a feed can tell when some were
// lost in between.
const prevKey = "arq_prev"

// Feed hands every event read from topic to hub until ctx ends.
func Feed(ctx context.Context, sub message.Subscriber, topic string, hub *Hub) error {
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	for msg := range msgs {
		var e eventstore.Recorded
		if err := json.Unmarshal(msg.Payload, &e); err == nil {
			// A message without a readable prev (a relay of an older
			// version) is delivered without the gap check.
			prev, _ := eventstore.ParseCursor(msg.Metadata.Get(prevKey))
			hub.Deliver(prev, e)
		}
		msg.Ack()
	}
	return nil
}

// FeedFrom feeds hub from topic on client, from the topic's end as it is
// when it starts (retrying, every retry, while Redis does not answer).
//
// A fan-out subscriber left to start at "$" reads, each time a blocking
// read ends empty, from the end as it is then: an event published
// between two reads, as the first one after a quiet spell is, would be
// skipped. From a message id, every read starts after the last message
// read, and nothing published since the feed began is missed.
func FeedFrom(ctx context.Context, client redis.UniversalClient, topic string, hub *Hub, wlog watermill.LoggerAdapter, log *slog.Logger, retry time.Duration) error {
	var start string
	for tries := 0; ; tries++ {
		id, err := End(ctx, client, topic)
		if err == nil {
			start = id
			if tries > 0 {
				log.Info("live feed: Redis answers, feeding this instance's streams")
			}
			break
		}
		if tries == 0 {
			log.Warn("live feed: Redis does not answer; this instance's event streams get only what it relays itself until it does", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client: client, BlockTime: time.Second, DisableIndefiniteInitialBlock: true, FanOutOldestId: start,
	}, wlog)
	if err != nil {
		return fmt.Errorf("live subscriber: %w", err)
	}
	defer sub.Close()
	return Feed(ctx, sub, topic, hub)
}

// End is the id of topic's last message, "0-0" while it has none: a
// read from it gets what is published from now on.
func End(ctx context.Context, client redis.UniversalClient, topic string) (string, error) {
	msgs, err := client.XRevRangeN(ctx, topic, "+", "-", 1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("read the end of %s: %w", topic, err)
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

package live

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

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

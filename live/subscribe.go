package live

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/arq-memory/arq/eventstore"
)

// Feed hands every event read from topic to hub until ctx ends.
func Feed(ctx context.Context, sub message.Subscriber, topic string, hub *Hub) error {
	msgs, err := sub.Subscribe(ctx, topic)
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", topic, err)
	}
	for msg := range msgs {
		var e eventstore.Recorded
		if err := json.Unmarshal(msg.Payload, &e); err == nil {
			hub.Deliver(e)
		}
		msg.Ack()
	}
	return nil
}

package live

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/redisclient"
)

// A feed that starts from the topic's end as End read it gets every event
// published after that read, also one published before its first read of
// Redis: from "$", the subscriber would skip it (and, the same way, the
// first event after each read that ends empty).
func TestFeedFromTheEndMissesNothingPublishedSince(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := redisclient.New("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("Redis at 127.0.0.1:6379 is needed: %v", err)
	}
	topic := fmt.Sprintf("arq-test-live-%d", time.Now().UnixNano())
	t.Cleanup(func() { client.Del(context.Background(), topic) })

	if id, err := End(ctx, client, topic); err != nil || id != "0-0" {
		t.Fatalf("end of an empty topic: %q, %v; want 0-0", id, err)
	}
	pub, err := redisstream.NewPublisher(redisstream.PublisherConfig{Client: client}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	send := func(pos int64) {
		payload, _ := json.Marshal(eventstore.Recorded{Position: pos, TransactionID: 1, EventID: fmt.Sprint(pos)})
		m := message.NewMessage(watermill.NewULID(), payload)
		m.Metadata.Set(prevKey, eventstore.Cursor{TransactionID: 1, Position: pos - 1}.String())
		if err := pub.Publish(topic, m); err != nil {
			t.Fatal(err)
		}
	}
	send(1) // before: not this feed's

	start, err := End(ctx, client, topic)
	if err != nil {
		t.Fatal(err)
	}
	send(2) // after End, before the feed reads
	hub := NewHub()
	l := hub.Listen(nil)
	sub, err := redisstream.NewSubscriber(redisstream.SubscriberConfig{
		Client: client, BlockTime: time.Second, DisableIndefiniteInitialBlock: true, FanOutOldestId: start,
	}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	go func() { _ = Feed(ctx, sub, topic, hub) }()

	select {
	case e := <-l.C:
		if e.Position != 2 {
			t.Fatalf("first event fed: position %d, want 2", e.Position)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the event published after End never reached the hub")
	}
	send(3)
	select {
	case e := <-l.C:
		if e.Position != 3 {
			t.Fatalf("next event fed: position %d, want 3", e.Position)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the next event never reached the hub")
	}
}

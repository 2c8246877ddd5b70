package vault_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/eventstore"
	"github.com/arq-memory/arq/internal/testdb"
	"github.com/arq-memory/arq/vault"
)

// BenchmarkSealOpen is the CPU of sealing one message event and of
// opening it with a remembered key, beside decoding it alone (what every
// reader of the event does anyway): the cost sealing adds per event.
//
//	go test -run '^$' -bench SealOpen ./vault/
func BenchmarkSealOpen(b *testing.B) {
	pool := testdb.Pool(b, testdb.New(b))
	m, _ := vault.ParseMaster(vault.NewMasterKey())
	v := vault.New(pool, vault.NewKeyring(m), true)
	ctx := context.Background()
	data, _ := json.Marshal(domain.MessageAppendedData{MessageID: "01JMSG", SessionID: "01JSES", UserID: "01JUSR", Role: "user",
		Content: strings.Repeat("a sentence of an ordinary message. ", 8), Tokens: 60, Metadata: map[string]any{"source": "chat"}})
	st := eventstore.Stream{ID: "message_log-01JSES", Type: domain.StreamMessageLog}
	seal := func() eventstore.Recorded {
		apps := []eventstore.StreamAppend{{Stream: st, Events: []eventstore.Event{{ID: "01JEVT", Type: domain.MessageAppended, Data: data}}}}
		if _, err := v.Seal(ctx, apps); err != nil {
			b.Fatal(err)
		}
		e := apps[0].Events[0]
		return eventstore.Recorded{EventID: e.ID, Type: e.Type, StreamID: st.ID, Data: e.Data}
	}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := domain.DecodeEvent(domain.MessageAppended, 1, data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("seal", func(b *testing.B) {
		for b.Loop() {
			seal()
		}
	})
	b.Run("open", func(b *testing.B) {
		sealed := seal()
		opener := v.Recent()
		for b.Loop() {
			e := sealed
			if err := opener.Open(ctx, []eventstore.Recorded{e}); err != nil || e.Erased {
				b.Fatal(err)
			}
		}
	})
}

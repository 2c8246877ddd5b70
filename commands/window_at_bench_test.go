package commands_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/arq-memory/arq/domain"
	"github.com/arq-memory/arq/history"
	"github.com/arq-memory/arq/projections/readmodel"
)

// BenchmarkWindowAtBacklog is the snapshot pass's window of an assistant
// message (readmodel.WindowAt) when the pass runs behind a busy log: a
// session of 500 turns (a user and an assistant message each, appended
// 100 messages at a time), after 100 memories of its user; then 2,000
// more memories stored; then 10 of the first memories updated and 10 of
// the first user messages edited. at=oldest is the first answer (all of
// that came after it: 20 items changed, 2,000 memories stored after);
// at=each goes round the 500 answers, as a pass behind all of them
// would; at=newest is an answer appended after all of it, as a prompt
// pass finds it. baseline=window is the plain window behind that newest
// answer (readmodel.Window with its sequence number and time, what the
// pass computed before it held items as they were).
func BenchmarkWindowAtBacklog(b *testing.B) {
	const turns, before, after, edits = 500, 100, 2000, 10
	ctx := context.Background()
	e := newLiveEnv(b)
	u, err := e.svc.RegisterUser(ctx, testMeta, domain.RegisterUser{ExternalID: "bench", Name: "Bench"})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := e.svc.StartSession(ctx, testMeta, u.ID, domain.StartSession{Title: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	text := func(i int) string {
		return fmt.Sprintf("note %d about the garden, the river and the bees in the lavender, row %d", i, i%37)
	}
	var memories []string
	store := func(n int) {
		for range n {
			res, err := e.svc.StoreMemory(ctx, testMeta, u.ID, domain.StoreMemory{Type: "semantic", Content: text(len(memories))})
			if err != nil {
				b.Fatal(err)
			}
			memories = append(memories, res.ID)
		}
	}
	var answers, questions []string
	appendTurns := func(n int) {
		for i := 0; i < n; i += 50 {
			batch := make([]domain.NewMessage, 0, 100)
			for j := i; j < min(i+50, n); j++ {
				batch = append(batch, domain.NewMessage{Role: "user", Content: "question " + text(j)},
					domain.NewMessage{Role: "assistant", Content: "answer " + text(j)})
			}
			if _, err := e.svc.AppendMessages(ctx, testMeta, sess.ID, batch); err != nil {
				b.Fatal(err)
			}
			for k := 0; k < len(batch); k += 2 {
				questions = append(questions, batch[k].MessageID.String())
				answers = append(answers, batch[k+1].MessageID.String())
			}
		}
	}
	store(before)
	appendTurns(turns)
	store(after)
	for i := range edits {
		content := "rewritten " + text(i)
		if _, err := e.svc.UpdateMemory(ctx, testMeta, memories[i], nil, domain.UpdateMemory{Content: &content}); err != nil {
			b.Fatal(err)
		}
		if _, err := e.svc.EditMessage(ctx, testMeta, questions[i], nil, domain.EditMessage{Content: &content}); err != nil {
			b.Fatal(err)
		}
	}
	appendTurns(1)
	res, err := e.svc.AppendMessages(ctx, testMeta, sess.ID, []domain.NewMessage{{Role: "user", Content: "and the pond?"}})
	if err != nil {
		b.Fatal(err)
	}
	e.caughtUp(b, res.Cursor)
	past := history.New(e.store)
	for _, bc := range []struct {
		name string
		at   func(i int) string
	}{
		{"at=oldest", func(int) string { return answers[0] }},
		{"at=each", func(i int) string { return answers[i%turns] }},
		{"at=newest", func(int) string { return answers[turns] }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := e.reader.WindowAt(ctx, bc.at(i), domain.DefaultBudget(), e.tokens, past); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
	b.Run("baseline=window/at=newest", func(b *testing.B) {
		m, err := e.reader.GetMessage(ctx, answers[turns])
		if err != nil {
			b.Fatal(err)
		}
		req := readmodel.WindowRequest{Budget: domain.DefaultBudget(), BeforeSeq: m.Seq, Now: m.CreatedAt, CreatedBefore: &m.CreatedAt}
		for b.Loop() {
			if _, err := e.reader.Window(ctx, sess.ID, req, e.tokens); err != nil {
				b.Fatal(err)
			}
		}
	})
}

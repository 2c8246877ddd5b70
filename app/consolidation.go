package app

import (
	"context"

	"github.com/arq-memory/arq/commands"
	"github.com/arq-memory/arq/projections/readmodel"
)

// consolidation merges users' duplicate memories: exact duplicates
// always, near-duplicates when an extractor is configured (or the
// options give one). It needs PartCommands.
func (a *App) consolidation() *commands.Consolidation {
	ex := a.opt.ConsolidationExtractor
	if ex == nil {
		ex = a.extractor()
	}
	return commands.NewConsolidation(a.commands, ex, memoryList{a.reader}, memoryLookup{a.reader, a.settle})
}

// memoryList lists a user's live memories from the read model, newest
// first, a page at a time.
type memoryList struct{ r *readmodel.Reader }

// pageSize is the read model's largest page.
const pageSize = 100

func (l memoryList) LiveMemoryIDs(ctx context.Context, userID string, limit int) ([]string, error) {
	var ids []string
	cursor := ""
	for len(ids) < limit {
		page, next, err := l.r.ListMemories(ctx, userID, readmodel.MemoryFilter{}, readmodel.Page{Cursor: cursor, Limit: min(pageSize, limit-len(ids))})
		if err != nil {
			return nil, err
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	return ids, nil
}

package domain

import "context"

// TokenCounter counts the tokens of a text the way the assistant's model
// does. Commands count once and record the count in the event, so replays
// never recount.
type TokenCounter interface {
	Count(text string) int
}

// TranscriptLine is one message as a summarizer reads it.
type TranscriptLine struct {
	Role    string
	Content string
}

// Summarizer condenses a session's older messages, folding in the summary
// before them (previous, "" for the first), into one text. Name says which
// summarizer made it; it is recorded with the summary.
type Summarizer interface {
	Summarize(ctx context.Context, previous string, lines []TranscriptLine) (string, error)
	Name() string
}

// DueSummary is a session whose messages outside the recent window have
// passed the summary threshold: Lines, the messages FromSeq..ToSeq, are to
// be folded into the summary after version After (Previous its text). The
// read model finds it and the summary worker records it; both speak of it
// in this one type.
type DueSummary struct {
	SessionID, UserID string
	After             int
	Previous          string
	FromSeq, ToSeq    int
	Lines             []TranscriptLine
	// Versions is the version of each message the lines come from, by id:
	// the summary must not be recorded if one of them changed meanwhile.
	Versions map[string]int
}

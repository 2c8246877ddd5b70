package domain

// TokenCounter counts the tokens of a text the way the assistant's model
// does. Commands count once and record the count in the event, so replays
// never recount.
type TokenCounter interface {
	Count(text string) int
}

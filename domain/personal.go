package domain

// Personal data. ARQ keeps a person's data (what they wrote and what was
// learned about them) so that it can be erased for good without
// rewriting the log: each event's personal fields are sealed under a data
// key labelled with their erasable unit, and erasing the unit deletes the
// keys labelled with it. The
// table below is the one place that says which fields are personal and
// which unit they belong to; what is left in the clear are ids, types,
// times, counts and sizes.

// Erasable units: what one erasure removes.
const (
	// UnitUser is a user's profile, external id, and sessions' titles
	// and metadata.
	UnitUser = "user"
	// UnitMessage is one message: its text, name, metadata and embedding.
	UnitMessage = "message"
	// UnitMemory is one memory: its text, tags, metadata and embedding.
	UnitMemory = "memory"
	// UnitSummary is one summary of a session (one session.summarized
	// event): it folds in the text of the messages it covers, so erasing
	// one of them erases it.
	UnitSummary = "summary"
	// UnitSnapshot is the query of one context snapshot, which is the
	// text of a message it held (or a client's own query).
	UnitSnapshot = "snapshot"
)

// Personal says where an event's personal data is and whose it is.
type Personal struct {
	// Fields are the payload's personal fields, by JSON name.
	Fields []string
	// Unit is the erasable unit (Unit*) the fields belong to.
	Unit string
	// IDField names the payload field holding the unit's id. Empty: the
	// id is the entity id of the event's stream, or for a summary the
	// event's own id.
	IDField string
}

// personal is the table of personal data, by event type. Event types not
// in it hold none. The owner of every unit is the user named by the
// payload's user_id, or the user itself.
var personal = map[string]Personal{
	UserRegistered:     {Fields: []string{"external_id", "name", "email", "metadata"}, Unit: UnitUser, IDField: "user_id"},
	UserProfileUpdated: {Fields: []string{"name", "email", "metadata"}, Unit: UnitUser},
	ExternalIDClaimed:  {Fields: []string{"external_id"}, Unit: UnitUser, IDField: "user_id"},
	ExternalIDReleased: {Fields: []string{"external_id"}, Unit: UnitUser, IDField: "user_id"},
	SessionStarted:     {Fields: []string{"title", "metadata"}, Unit: UnitUser, IDField: "user_id"},

	MessageAppended: {Fields: []string{"content", "name", "metadata", "embedding"}, Unit: UnitMessage, IDField: "message_id"},
	MessageEdited:   {Fields: []string{"content", "metadata", "embedding"}, Unit: UnitMessage},
	MessageRedacted: {Fields: []string{"reason"}, Unit: UnitMessage},

	MemoryStored:     {Fields: []string{"content", "tags", "metadata", "embedding", "reason"}, Unit: UnitMemory, IDField: "memory_id"},
	MemoryUpdated:    {Fields: []string{"content", "tags", "metadata", "embedding", "reason"}, Unit: UnitMemory},
	MemorySuperseded: {Fields: []string{"reason"}, Unit: UnitMemory},
	SessionExtracted: {Fields: []string{"decisions"}, Unit: UnitExtraction, IDField: "run_id"},

	SessionSummarized:       {Fields: []string{"content"}, Unit: UnitSummary},
	ContextSnapshotRecorded: {Fields: []string{"query"}, Unit: UnitSnapshot, IDField: "snapshot_id"},
}

// PersonalData says which fields of an event of type eventType are
// personal, and false when it holds none.
func PersonalData(eventType string) (Personal, bool) {
	p, ok := personal[eventType]
	return p, ok
}

// KeyID names a unit as the key store labels its data keys:
// "<unit>:<id>". Ids are ARQ's own (ULIDs), so the label holds no personal
// data.
func KeyID(unit, id string) string { return unit + ":" + id }

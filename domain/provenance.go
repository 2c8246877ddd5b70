package domain

// ActionSuperseded names, in a memory's provenance, the change that
// marked it superseded (a memory.superseded event); the other changes are
// named by the extraction's decision actions (ActionAdd, ActionUpdate,
// ActionSupersede).
const ActionSuperseded = "superseded"

// DerivationAction is the extraction's action behind a memory event that
// carries provenance: a stored memory that replaced another (supersedes
// set) is ActionSupersede, any other stored one ActionAdd; an update is
// ActionUpdate and a supersession ActionSuperseded. Other event types are
// "".
func DerivationAction(eventType, supersedes string) string {
	switch eventType {
	case MemoryStored:
		if supersedes != "" {
			return ActionSupersede
		}
		return ActionAdd
	case MemoryUpdated:
		return ActionUpdate
	case MemorySuperseded:
		return ActionSuperseded
	}
	return ""
}

package index

// SetTestHookCommitted sets a function run between each commit and the
// publication of its changes (nil: none).
func SetTestHookCommitted(fn func()) { testHookCommitted = fn }

// SetTestHookEnqueue sets Enqueue's delivery hook (nil: none).
func SetTestHookEnqueue(fn func(stage string) error) { testHookEnqueue = fn }

// OutboxPassQueries are the queries every sender pass makes (see
// whereOutboxDue), with their arguments, for their plans.
var OutboxPassQueries = map[string]string{
	"due":       outboxSelect(whereOutboxDue),
	"followups": outboxSelect(whereOutboxFollowups),
	"waiting":   sqlOutboxWaiting,
}

// FileRowsQuery is the query FileRowsByKey ("key") and FileRowsByID ("id")
// make for n values.
var FileRowsQuery = fileRowsQuery

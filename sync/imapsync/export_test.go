package imapsync

// SetFlagsCommitHook sets the hook run in the transaction that commits a
// run's local flag changes (nil: none), for the tests that aim at a kill
// between the door's renames and that commit.
func SetFlagsCommitHook(h func() error) { flagsCommitHook = h }

// SetIntentHook sets the hook run between the steps of carrying out a
// queued local change (see intentHook; nil: none).
func SetIntentHook(h func(stage string) error) { intentHook = h }

// SetFlagsStoredHook sets the hook run after a run's flag STOREs, before
// it reads the rows it renames again (nil: none).
func SetFlagsStoredHook(h func()) { flagsStoredHook = h }

// SetRefreshHook sets the hook run when a run re-reads a folder it changed
// upstream (refreshAfterPush), after its downloads (nil: none).
func SetRefreshHook(h func()) { refreshHook = h }

// SetEndStampHook sets the hook run before a run takes its end stamps
// ("stamp"), before it reads its watch ("drain") and before it watches a
// folder its stamp vouched for ("arm"); nil: none.
func SetEndStampHook(h func(stage string)) { endStampHook = h }

// SetRowsReadHook sets the hook run when a scan compares a folder's
// listing with every row rather than with their image (nil: none).
func SetRowsReadHook(h func()) { rowsReadHook = h }

// SetReconciledHook sets the hook run when a plan has reconciled its
// folder, before it reads what changed upstream (nil: none).
func SetReconciledHook(h func()) { reconciledHook = h }

// QueuedAhead returns how many new messages plans queued before applying
// their folders' flag changes (queueAhead).
func QueuedAhead() int64 { return queuedAhead.Load() }

// AheadTaken returns how many plans took the answer of a SELECT made
// ahead (ahead.go).
func AheadTaken() int64 { return aheadTaken.Load() }

// WatchesStarted returns how many runs started a watch of their folders.
func WatchesStarted() int64 { return watchesStarted.Load() }

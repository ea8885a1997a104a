package maildir

// SyncfsMin is syncfsMin, for the external tests.
const SyncfsMin = syncfsMin

//go:build race

package index

// garbageLimit is the most a garbage test lets one message allocate.
// Under the race detector, sync.Pool drops a share of what is put back at
// random (to shake out misuse), so the pooled buffers are made again now
// and then (18 to 27 KB a message measured): the limit there only keeps
// the test from failing by chance; the run without -race, which CI makes
// too, holds the pools to 16 KiB.
const garbageLimit = 48 << 10

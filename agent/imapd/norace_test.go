//go:build !race

package imapd

// garbageLimit is the most a garbage test lets one message allocate (see
// race_test.go for the race detector's).
const garbageLimit = 16 << 10

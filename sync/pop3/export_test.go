package pop3

import "time"

// SetTestHook installs a hook called at the points of a run ("listed",
// "pending", "renamed", "synced", "committed", "dele", "quit": see testHook);
// an error from it ends Fetch there as a crash would. It returns a function
// that removes the hook.
func SetTestHook(fn func(point string) error) (restore func()) {
	testHook = fn
	return func() { testHook = nil }
}

// SetTestClock makes Fetch see the time as now() (when it records a
// message as stored and decides whether DeleteAfterDays has passed). It
// returns a function that restores the real clock.
func SetTestClock(now func() time.Time) (restore func()) {
	timeNow = now
	return func() { timeNow = time.Now }
}

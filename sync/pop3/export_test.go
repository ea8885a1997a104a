package pop3

// SetTestHook installs a hook called at the points of a batch commit
// ("pending", "renamed", "synced"); an error from it ends Fetch there as a
// crash would. It returns a function that removes the hook.
func SetTestHook(fn func(point string) error) (restore func()) {
	testHook = fn
	return func() { testHook = nil }
}

package index

// SetTestHookCommitted sets a function run between each commit and the
// publication of its changes (nil: none).
func SetTestHookCommitted(fn func()) { testHookCommitted = fn }

// SetTestHookEnqueue sets Enqueue's delivery hook (nil: none).
func SetTestHookEnqueue(fn func(stage string) error) { testHookEnqueue = fn }

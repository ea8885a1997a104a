package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// TestRunMemoryLimit: postfach run sets its soft memory limit, unless
// GOMEMLIMIT sets one (the runtime read it at start; it is left alone).
func TestRunMemoryLimit(t *testing.T) {
	old := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(old)

	t.Setenv("GOMEMLIMIT", "")
	debug.SetMemoryLimit(math.MaxInt64)
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != runMemoryLimit {
		t.Errorf("limit %d, want %d", got, runMemoryLimit)
	}

	t.Setenv("GOMEMLIMIT", "1GiB")
	debug.SetMemoryLimit(1 << 30)
	setMemoryLimit()
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("with GOMEMLIMIT set: limit %d, want the environment's %d", got, 1<<30)
	}
}

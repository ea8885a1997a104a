package faultproxy

import (
	"context"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"
)

// RunCases runs fn(t, i) for i in 0..len(names)-1 as subtests of t named
// names[i], width of them at a time, and returns when all are done. The
// width is its own, not -parallel's: fault cases wait on servers and on
// timeouts far more than they use a CPU.
func RunCases(t *testing.T, width int, names []string, fn func(t *testing.T, i int)) {
	t.Helper()
	sem := make(chan struct{}, max(width, 1))
	var wg sync.WaitGroup
	for i, name := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.Run(name, func(t *testing.T) { fn(t, i) })
		}()
	}
	wg.Wait()
}

// Grace is how long Within waits for a run past the end of its context.
const Grace = 15 * time.Second

// Within runs fn with a context that ends after timeout and returns what
// fn returns. A run still going Grace after its context ended (it does not
// notice the end, or a read it waits on has no deadline) fails the test
// at once with the stacks of the goroutines fn started (they carry a
// profiler label naming the test), which tell where it hangs.
func Within[T any](t testing.TB, timeout time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return within(ctx, t, timeout, fn)
}

// Faulted runs fn through p with the fault f added (Within, runFor). A
// Hang fault's run gets hangFor more once the fault has fired, then its
// context ends: it must then give up with an error, and a loaded machine
// that is slow to reach the fault does not keep it from firing.
func Faulted[T any](t testing.TB, p *Proxy, f Fault, runFor, hangFor time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	t.Helper()
	p.Add(f)
	if f.Action != Hang {
		return Within(t, runFor, fn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runFor)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for p.Count(f.Name) == 0 {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
		select {
		case <-stop:
		case <-time.After(hangFor):
			cancel()
		}
	}()
	return within(ctx, t, runFor, fn)
}

// within is Within on a context that ends by timeout at the latest.
func within[T any](ctx context.Context, t testing.TB, timeout time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go pprof.Do(ctx, pprof.Labels(runLabel, t.Name()), func(ctx context.Context) {
		v, err := fn(ctx)
		done <- result{v, err}
	})
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(timeout + Grace):
		t.Fatalf("the run hangs %v after its context ended; its goroutines:\n%s", Grace, stacksOf(t.Name()))
		var zero T
		return zero, nil
	}
}

// runLabel is the profiler label Within gives the goroutines of a run.
const runLabel = "faultproxy.run"

// stacksOf returns the goroutine profile's entries (stacks with how many
// goroutines share them) of the goroutines labelled as run name.
func stacksOf(name string) string {
	var b strings.Builder
	if err := pprof.Lookup("goroutine").WriteTo(&b, 1); err != nil {
		return err.Error()
	}
	want := fmt.Sprintf("%q:%q", runLabel, name)
	var out []string
	for _, g := range strings.Split(b.String(), "\n\n") {
		if strings.Contains(g, want) {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}

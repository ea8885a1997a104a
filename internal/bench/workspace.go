package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// workspace is what every scenario starts with: a work directory (removed
// at the end unless kept), a bin/ directory in it, the report's header and
// the postfach binary under test (prebuilt, or built from this checkout).
type workspace struct {
	dir    string
	binDir string
	rep    *report
	pf     *postfachPeer
	keep   bool
}

// newWorkspace prepares a scenario's workspace; the caller must call close.
// kind is the account kind the postfach peer syncs ("imap" or "pop3").
func newWorkspace(ctx context.Context, scenario, kind, parent string, keep bool, prebuilt string, args []string) (*workspace, error) {
	dir, err := os.MkdirTemp(parent, "postfach-bench-")
	if err != nil {
		return nil, err
	}
	return setUpWorkspace(ctx, scenario, kind, dir, keep, prebuilt, args)
}

// reuseWorkspace is newWorkspace in an existing work directory (one an
// earlier run kept), which is kept again.
func reuseWorkspace(ctx context.Context, scenario, kind, dir string, prebuilt string, args []string) (*workspace, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, err
	} else if !st.IsDir() {
		return nil, fmt.Errorf("%s is no directory", dir)
	}
	return setUpWorkspace(ctx, scenario, kind, dir, true, prebuilt, args)
}

func setUpWorkspace(ctx context.Context, scenario, kind, dir string, keep bool, prebuilt string, args []string) (*workspace, error) {
	var err error
	w := &workspace{dir: dir, keep: keep}
	fail := func(err error) (*workspace, error) {
		w.close()
		return nil, err
	}
	if w.dir, err = filepath.Abs(dir); err != nil {
		return fail(err)
	}
	if err := os.Chmod(w.dir, 0o755); err != nil { // Dovecot's users must pass through
		return fail(err)
	}
	w.binDir = filepath.Join(w.dir, "bin")
	if err := os.MkdirAll(w.binDir, 0o755); err != nil {
		return fail(err)
	}
	w.rep = &report{
		Scenario:   scenario,
		Invocation: "go run ./internal/bench " + shellQuote(append([]string{scenario}, args...)),
		Machine:    describeMachine(w.dir),
		RSSMethod:  rssMethod(),
	}
	if keep {
		w.rep.WorkDir = w.dir
	}
	if prebuilt != "" {
		bin, err := filepath.Abs(prebuilt)
		if err != nil {
			return fail(err)
		}
		w.pf = &postfachPeer{bin: bin, version: "binary " + bin}
		w.rep.Build = "prebuilt " + bin
	} else {
		fmt.Fprintln(os.Stderr, "bench: building postfach")
		if w.pf, w.rep.Build, err = buildPostfach(ctx, w.binDir); err != nil {
			return fail(err)
		}
	}
	w.pf.kind = kind
	return w, nil
}

// close removes the work directory, or says where it was kept.
func (w *workspace) close() {
	if w.keep {
		fmt.Fprintln(os.Stderr, "bench: kept", w.dir)
		return
	}
	os.RemoveAll(w.dir)
}

// addPeers records the peers in the report, in order.
func (w *workspace) addPeers(peers []peer) {
	for _, p := range peers {
		w.rep.Peers = append(w.rep.Peers, peerInfo{Name: p.Name(), Version: p.Version(), Notes: p.Notes()})
	}
}

// measure runs a scenario's timed runs between two probes of the disk's
// fsync latency (the report shows both: a slow disk explains a slow run),
// then prints the report, as JSON with asJSON.
func (w *workspace) measure(asJSON bool, runs func() error) error {
	if err := w.measureOnly(runs); err != nil {
		return err
	}
	if asJSON {
		return w.rep.writeJSON(os.Stdout)
	}
	w.rep.writeText(os.Stdout)
	return nil
}

// measureOnly is measure without printing: the report is finished in
// w.rep.
func (w *workspace) measureOnly(runs func() error) error {
	var err error
	if w.rep.FsyncBefore, err = probeFsync(w.dir, 200); err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bench: file create+fsync latency: %s\n", w.rep.FsyncBefore)
	if err := runs(); err != nil {
		if w.keep {
			return err
		}
		return fmt.Errorf("%w\n(rerun with -keep to inspect the stores)", err)
	}
	if w.rep.FsyncAfter, err = probeFsync(w.dir, 200); err != nil {
		return fmt.Errorf("fsync probe: %w", err)
	}
	w.rep.finish()
	return nil
}

package main

import (
	"bytes"
	"strings"
	"sync"
)

// commitWatch is the stderr of a postfach run with -v: it keeps the text
// and counts, as they arrive, the debug lines the sync engine's committer
// writes around each commit ("committing", then "committed": the batch's
// files synced, renamed into cur/ and indexed in between). hit is closed at
// the atCommit-th "committing" line (never with atCommit 0), so that a
// test can kill the run the moment a commit begins; a run killed with more
// commits begun than ended was killed inside one.
type commitWatch struct {
	mu           sync.Mutex
	out, line    bytes.Buffer
	begun, ended int
	atCommit     int
	hit          chan struct{}
}

func newCommitWatch(atCommit int) *commitWatch {
	return &commitWatch{atCommit: atCommit, hit: make(chan struct{})}
}

func (w *commitWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(p)
	for _, c := range p {
		if c != '\n' {
			w.line.WriteByte(c)
			continue
		}
		switch l := w.line.String(); {
		case strings.Contains(l, " msg=committing "):
			w.begun++
			if w.begun == w.atCommit {
				close(w.hit)
			}
		case strings.Contains(l, " msg=committed "):
			w.ended++
		}
		w.line.Reset()
	}
	return len(p), nil
}

// counts returns the commits begun and ended so far.
func (w *commitWatch) counts() (begun, ended int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.begun, w.ended
}

func (w *commitWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

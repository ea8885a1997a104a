package testenv

import (
	"bytes"
	"strings"
	"sync"
)

// CommitWatch is the log output of a sync run (postfach -v, or the
// engine's debug log): it keeps the text and counts, as they arrive, the
// lines the sync engines' committers write around each commit
// ("committing", then "committed": the batch's files synced, renamed into
// cur/ and indexed in between). Hit is closed at the atCommit-th
// "committing" line (never with atCommit 0), so that a test can kill the
// run the moment a commit begins; a run killed with more commits begun
// than ended was killed inside one. It is safe for concurrent use.
type CommitWatch struct {
	Hit chan struct{}

	mu           sync.Mutex
	out, line    bytes.Buffer
	begun, ended int
	atCommit     int
}

// NewCommitWatch returns a watch whose Hit closes at commit atCommit.
func NewCommitWatch(atCommit int) *CommitWatch {
	return &CommitWatch{atCommit: atCommit, Hit: make(chan struct{})}
}

func (w *CommitWatch) Write(p []byte) (int, error) {
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
				close(w.Hit)
			}
		case strings.Contains(l, " msg=committed "):
			w.ended++
		}
		w.line.Reset()
	}
	return len(p), nil
}

// Counts returns the commits begun and ended so far.
func (w *CommitWatch) Counts() (begun, ended int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.begun, w.ended
}

// String returns the output so far.
func (w *CommitWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

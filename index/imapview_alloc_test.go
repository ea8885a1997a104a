package index

import (
	"runtime"
	"strings"
	"testing"
)

// TestViewOfGarbage: computing a small message's IMAP view allocates a
// few KiB, not fresh read buffers per message (48 KiB each: most of the
// agent's garbage while a SEARCH computed the views of a 40,000-message
// folder); and a view computed with reused buffers is the same as the
// first.
func TestViewOfGarbage(t *testing.T) {
	msg := "From: Alice <alice@example.org>\nTo: bob@example.net\nSubject: hello\nDate: Tue, 3 Nov 2026 10:20:30 +0000\n" +
		"Message-ID: <1@example.org>\nContent-Type: text/plain; charset=utf-8\n\n" +
		strings.Repeat("Some text of the message, long enough to matter.\n", 40)
	first, err := viewOf(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		v, err := viewOf(strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		if v.size != first.size || string(v.header) != string(first.header) || v.body.Lines != first.body.Lines ||
			v.env.Subject != "hello" || v.env.MessageID != first.env.MessageID {
			t.Fatalf("view with reused buffers: size %d, lines %d, subject %q; first: size %d, lines %d",
				v.size, v.body.Lines, v.env.Subject, first.size, first.body.Lines)
		}
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / n
	t.Logf("%d bytes allocated per view", per)
	if per > garbageLimit {
		t.Errorf("viewOf allocates %d bytes per message, want at most %d KiB", per, garbageLimit>>10)
	}
}

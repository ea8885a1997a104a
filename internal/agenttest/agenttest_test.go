package agenttest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestServerOps: the upstream changes land on the server as the model says,
// byte for byte, and Diff sees a change the model did not make.
func TestServerOps(t *testing.T) {
	d := testenv.StartDovecot(t)
	c, err := d.Dial(testenv.DefaultUser.Name)
	if err != nil {
		t.Fatal(err)
	}
	m := NewModel("ops", 1, "INBOX", "Second")
	s, err := NewServer(c, m)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 40 {
		if _, err := UpstreamStep(s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := m.Diff("server", got); len(diffs) > 0 {
		t.Fatalf("server differs from the model:\n%s", strings.Join(diffs, "\n"))
	}
	// A change behind the model's back is seen.
	msg, _ := m.Pick(Upstream, nil)
	other := NewModel("other", 1, m.Folders...)
	s2 := &Server{c: s.c, model: other}
	if err := s2.SetFlags(msg, m.RandomFlags(msg.Flags)); err != nil {
		t.Fatal(err)
	}
	got, err = s.Snapshot(false)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := m.Diff("server", got); len(diffs) != 1 || !strings.Contains(diffs[0], "flags") {
		t.Errorf("after a flag change the model did not make, diffs %q, want one about flags", diffs)
	}
}

// TestMaildirOps: the local changes land in the Maildir as the model says,
// and Diff sees a doubled and a lost message.
func TestMaildirOps(t *testing.T) {
	root := t.TempDir()
	m := NewModel("local", 2, "INBOX", "Second")
	l := NewMaildir(root, "acct", m)
	for range 60 {
		if _, err := LocalStep(l); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Snapshot(true)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := m.Diff("local", got); len(diffs) > 0 {
		t.Fatalf("Maildir differs from the model:\n%s", strings.Join(diffs, "\n"))
	}
	moved := 0
	for _, msg := range m.Messages() {
		if msg.Moved != "" {
			moved++
		}
	}
	if moved == 0 {
		t.Errorf("60 random steps made no move")
	}
	// A copy and a lost file are seen.
	a, _ := m.Pick(Local, nil)
	b, _ := m.Pick(Local, func(x Msg) bool { return x.ID != a.ID })
	sa := got[a.ID][0]
	if err := testCopy(filepath.Join(l.Dir(a.Folder), sa.Where), filepath.Join(l.Dir(a.Folder), "cur", "copy:2,")); err != nil {
		t.Fatal(err)
	}
	m.update(b.ID, "test: misplaced", func(x *Msg) { x.Gone = false; x.Folder = "Elsewhere" })
	got, _ = l.Snapshot(false)
	diffs := m.Diff("local", got)
	if len(diffs) != 2 || !strings.Contains(strings.Join(diffs, "\n"), "2 copies") {
		t.Errorf("diffs %q, want a doubled and a misplaced message", diffs)
	}
}

func testCopy(from, to string) error {
	data, err := readHead(from, true)
	if err != nil {
		return err
	}
	return writeFile(to, data)
}

func TestLogKey(t *testing.T) {
	lines := []LogLine{
		{Text: `{"time":"2026-01-01T00:00:00Z","level":"WARN","msg":"offline","account":"work","retry":"1s"}`},
		{Text: `{"time":"2026-01-01T00:00:01Z","level":"WARN","msg":"offline","account":"work","retry":"2s"}`},
		{Text: `time=2026-01-01T00:00:02Z level=INFO msg="back online" account=work`},
		{Text: `time=2026-01-01T00:00:03Z level=INFO msg="back online" account=home`},
	}
	rep := Repeated(lines)
	if len(rep) != 1 || rep["WARN work: offline"] != 2 {
		t.Errorf("Repeated = %v", rep)
	}
	if k := lines[2].Key(); k != `INFO work: "back online"` {
		t.Errorf("key of a text line: %q", k)
	}
}

func TestLogBuffer(t *testing.T) {
	var b LogBuffer
	start := time.Now()
	b.Write([]byte("one\ntw"))
	b.Write([]byte("o\nthree"))
	got := b.Lines(start, time.Now().Add(time.Second))
	if len(got) != 2 || got[0].Text != "one" || got[1].Text != "two" {
		t.Errorf("lines %+v", got)
	}
	if b.String() != "one\ntwo\nthree" {
		t.Errorf("String %q", b.String())
	}
	_ = maildir.FlagSeen
}

package migrate

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestPlanMemory: what a run keeps per source message while it plans and
// verifies, and what matching allocates, are small and fixed (issue 14:
// a 100,000-message migration held 350 bytes and more per message, and a
// string-keyed map of the destination besides).
func TestPlanMemory(t *testing.T) {
	const n = 20000
	ctx := context.Background()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d0 := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	err = st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("src")
		if err != nil {
			return err
		}
		f, err := tx.EnsureFolder(a, "INBOX", "src/INBOX")
		if err != nil {
			return err
		}
		ms := make([]*index.NewMessage, n)
		for i := range ms {
			m := &index.NewMessage{DeferText: true}
			m.Folder, m.Key = f.ID, fmt.Sprintf("1796475673.%06d_1.7fea813f3ae70851.vm", i)
			m.File = "cur/" + m.Key + fmt.Sprintf(",U=%d:2,S", i+1)
			m.UID, m.Flags, m.RFC822Size = uint32(i+1), maildir.FlagSeen, int64(4000+i)
			m.InternalDate = d0.Add(time.Duration(i) * time.Minute)
			m.Header = index.Header{MessageID: fmt.Sprintf("%d.%x.JavaMail.someone@mail.example.org", i, i*7919),
				Subject: "a subject line of some length", From: "Someone <someone@example.org>"}
			if i%10 == 0 {
				m.Keywords = []string{"$Label1", "Junk"}
			}
			ms[i] = m
		}
		_, err = tx.AddMessages(ms)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	o := &Options{Index: st, Root: root, Source: "src"}
	before := heap()
	jobs, err := loadSource(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	held := heap() - before
	if len(jobs) != 1 || len(jobs[0].recs) != n {
		t.Fatalf("%d jobs", len(jobs))
	}
	// A srcRec is 64 bytes; the rest is the jobs and folders.
	t.Logf("loadSource: %d bytes held per message", held/n)
	if per := held / n; per > 80 {
		t.Errorf("loadSource holds %d bytes per message, want at most 80", per)
	}

	// The destination: every other message, and some of another size.
	j := jobs[0]
	var dest []destRec
	for i := 0; i < n; i += 2 {
		r := j.recs[i]
		dest = append(dest, destRec{id: r.id, size: r.size + int64(i%20/18), date: r.date, flags: r.flags, kw: r.kw})
	}
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	calls := 0
	m := match(j.recs, dest, func(int) (int64, error) { calls++; return 0, fmt.Errorf("not read") })
	runtime.ReadMemStats(&ms1)
	if want := n/2 + n/20; len(m.missing) != want || m.extra != n/20 || calls != n/20 {
		t.Fatalf("missing %d (want %d), extra %d, crlf asked %d times", len(m.missing), want, m.extra, calls)
	}
	// The missing list (4 bytes each, grown by append) and nothing per
	// destination message.
	t.Logf("match: %d bytes allocated per message", (ms1.TotalAlloc-ms0.TotalAlloc)/n)
	if per := (ms1.TotalAlloc - ms0.TotalAlloc) / n; per > 16 {
		t.Errorf("match allocates %d bytes per message, want at most 16", per)
	}
	runtime.KeepAlive(jobs)
}

// heap is the live heap after a collection.
func heap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

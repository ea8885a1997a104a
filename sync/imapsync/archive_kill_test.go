package imapsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/sync/imapconn"
	"github.com/postfach/postfach/sync/imapsync"
)

const archiveChildEnv = "POSTFACH_ARCHIVE_KILL_CHILD"

// TestKillArchiveChild is the archive sync process TestKillArchive kills
// with SIGKILL. Run on its own it does nothing.
func TestKillArchiveChild(t *testing.T) {
	v := os.Getenv(archiveChildEnv)
	if v == "" {
		return
	}
	var c killChild
	if err := json.Unmarshal([]byte(v), &c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	st, err := index.OpenStore(c.Root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	o := imapsync.Options{
		Account: "acct", Root: c.Root, Index: st, Archive: true, Force: true, CreateFolders: true,
		Endpoint: imapconn.Endpoint{Addr: c.Addr, TLS: "none", Username: c.User, Password: c.Password},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if _, err := imapsync.Sync(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "sync:", err)
		os.Exit(3)
	}
	st.Close()
	os.Exit(0)
}

// lineWatch signals Hit when a line containing want is written.
type lineWatch struct {
	want string
	Hit  chan struct{}
	mu   sync.Mutex
	b    bytes.Buffer
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.Hit) })
	}
	return len(p), nil
}

// TestKillArchive: in an archive account, messages expunged upstream and
// messages deleted locally are archived by sync processes killed with
// SIGKILL while they archive (the moment their "archiving" debug line
// comes, plus a random delay that grows from run to run: inside the moves, between a copy's delivery and
// the expunge upstream, between the expunge and the rows), until a run
// finishes. Then every message is exactly once where it belongs, with
// its bytes: in the archive view (file and one row) if it was deleted on
// either side, else in INBOX on both sides; nothing is uploaded again.
func TestKillArchive(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.Archive, o.Force, o.CreateFolders = true, true, true }
	n := 60
	if testing.Short() {
		n = 24
	}
	e.d.Seed(t, testenv.DefaultUser.Name, corpus.Generate(7, n, corpus.Options{Folders: []string{"INBOX"}}))
	e.sync()
	orig := e.localMsgs("INBOX")
	gone := map[string]bool{}
	for uid := uint32(1); uid <= uint32(n/3); uid++ {
		id, _ := e.rawByUID("INBOX", uid)
		gone[id] = true
		e.serverExpunge("INBOX", uid)
	}
	d := e.dir("INBOX")
	for uid := uint32(n/3 + 1); uid <= uint32(2*n/3); uid++ {
		en := e.entryByUID("INBOX", uid)
		gone[e.fileMessageID("INBOX", en)] = true
		if err := os.Remove(d.FilePath(en)); err != nil {
			t.Fatal(err)
		}
	}
	e.store.Close()

	pass, _ := e.d.Password(testenv.DefaultUser.Name)
	cfg, _ := json.Marshal(killChild{Root: e.root, Addr: e.d.IMAPAddr(), User: testenv.DefaultUser.Name, Password: pass})
	rng := rand.New(rand.NewPCG(1, 2))
	killed, finished := 0, false
	kills := 12
	if testing.Short() {
		kills = 6
	}
	for run := 0; run < kills && !finished; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillArchiveChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), archiveChildEnv+"="+string(cfg))
		w := &lineWatch{want: "msg=archiving", Hit: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: %v\n%s", run, err, w.b.String())
			}
			finished = true
		case <-w.Hit:
			// Later and later: each run gets further before its kill
			// (the first one none: a run that finished before its
			// kill would leave none killed while archiving).
			time.Sleep(time.Duration(rng.IntN(run*40000+1)) * time.Microsecond)
			cmd.Process.Signal(syscall.SIGKILL)
			if err := <-done; err == nil {
				finished = true
			} else {
				killed++
				out := w.b.String()
				t.Logf("run %d killed after: %d archiving here (%q), %d upstream", run, strings.Count(out, "deleted here"),
					lastArchiving(out), strings.Count(out, "expunged upstream"))
			}
		}
	}
	t.Logf("%d runs killed while archiving", killed)
	if killed == 0 {
		t.Error("no run was killed while archiving")
	}
	e.openIndex()
	e.sync() // the clean run
	e.quiet("after the clean run")

	view := index.ArchiveFolder("INBOX")
	archived, inbox, server := e.localMsgs(view), e.localMsgs("INBOX"), e.serverMsgs("INBOX")
	for id, raw := range orig {
		where := inbox
		if gone[id] {
			where = archived
			if _, ok := inbox[id]; ok {
				t.Errorf("%s (deleted) is in INBOX", id)
			}
			if _, ok := server[id]; ok {
				t.Errorf("%s (deleted) is upstream", id)
			}
		} else if _, ok := server[id]; !ok {
			t.Errorf("%s is missing upstream", id)
		}
		if got, ok := where[id]; !ok || !bytes.Equal(got, raw) {
			t.Errorf("%s: lost or changed (gone %v)", id, gone[id])
		}
		if gone[id] && e.localCopies(view, id) != 1 {
			t.Errorf("%s: %d copies in the archive view", id, e.localCopies(view, id))
		}
	}
	if len(archived) != len(gone) || len(inbox) != n-len(gone) || len(server) != n-len(gone) {
		t.Errorf("archive %d, INBOX %d, server %d; want %d, %d, %d", len(archived), len(inbox), len(server), len(gone), n-len(gone), n-len(gone))
	}
	// One row per archived file, each marked.
	var rows []*index.Message
	f := e.folderRow(view)
	if err := e.store.Read(context.Background(), func(tx *index.ReadTx) (err error) {
		if rows, err = tx.Messages(f.ID); err != nil {
			return err
		}
		for _, m := range rows {
			if at, err := tx.ArchivedAt(m.ID); err != nil || at.IsZero() {
				t.Errorf("row %d (%s) not marked archived", m.ID, m.Key)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(gone) {
		t.Errorf("%d rows in the archive view, want %d", len(rows), len(gone))
	}
}

// lastArchiving is the "messages=N" of the last archiving line of out.
func lastArchiving(out string) string {
	i := strings.LastIndex(out, "msg=archiving ")
	if i < 0 {
		return ""
	}
	line, _, _ := strings.Cut(out[i:], "\n")
	return line
}

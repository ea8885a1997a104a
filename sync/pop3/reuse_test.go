package pop3_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/pop3"
)

// reuseMsg is message i of a generation ("old" or "new": the same length,
// so that old i and new i have the same size when their bodies do).
func reuseMsg(gen string, i int, body string) corpus.Message {
	id := fmt.Sprintf("%s-%d@reuse.example", gen, i)
	raw := "From: sender@example.org\r\nTo: reader@example.org\r\n" +
		"Subject: " + gen + " message " + strconv.Itoa(i) + "\r\nMessage-ID: <" + id + ">\r\n\r\n" + body
	return corpus.Message{Folder: "INBOX", Date: time.Date(2024, 5, 1, 10, i, 0, 0, time.UTC), MessageID: id, Raw: []byte(raw)}
}

// reuseGenerations returns three old messages and five new ones. Dovecot
// gives the new ones UIDLs 1 to 5 again: new 1 and new 3 have the size of
// old 1 and old 3 (only their headers differ), new 2 has another size.
func reuseGenerations() (old, young []corpus.Message) {
	bodies := []string{"first body\r\n", "second body\r\n", "third body, a little longer\r\n"}
	for i, b := range bodies {
		old = append(old, reuseMsg("old", i+1, b))
	}
	young = []corpus.Message{
		reuseMsg("new", 1, "first body\r\n"),
		reuseMsg("new", 2, "the second body is longer now\r\n"),
		reuseMsg("new", 3, "THIRD BODY, A LITTLE LONGER\r\n"),
		reuseMsg("new", 4, "fourth\r\n"),
		reuseMsg("new", 5, "fifth\r\n"),
	}
	return old, young
}

// resetMailbox empties user's Maildir, Dovecot's index and UID list
// included: the next message delivered gets UID 1 under a new UIDVALIDITY,
// as after a backend migration.
func resetMailbox(t *testing.T, d *testenv.Dovecot, user string) {
	t.Helper()
	dir := d.MailDir(user)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// emptyServer deletes every message of user over POP3, as another client
// would.
func emptyServer(t *testing.T, d *testenv.Dovecot, user, pass string) {
	t.Helper()
	c, err := pop3.Dial(t.Context(), d.POP3Addr(), &pop3.Options{TLS: pop3.TLSNone, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(t.Context(), user, pass); err != nil {
		t.Fatal(err)
	}
	list, err := c.List()
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, m := range list {
		nums = append(nums, m.Num)
	}
	if err := c.DeleMany(t.Context(), nums); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

// stored returns the contents of the local folder's messages, after
// checking the index against the folder: one row per file with the file's
// size and hash, nothing pending, nothing left in tmp/.
func (e *fetchEnv) stored() [][]byte {
	t := e.t
	t.Helper()
	rows, _ := inboxState(t, e.st)
	p, _ := maildir.FolderDir(e.root, fetchAccount, "INBOX")
	files, err := (&maildir.Dir{Path: p}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	if tmp, err := os.ReadDir(filepath.Join(p, "tmp")); err != nil || len(tmp) != 0 {
		t.Errorf("tmp/ holds %d files (%v)", len(tmp), err)
	}
	byKey := map[string]*index.Message{}
	for _, m := range rows {
		byKey[m.Key] = m
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(p, f.Sub, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		m := byKey[f.Key]
		if m == nil {
			t.Errorf("file %s has no row", f.Name)
		} else if m.SHA256 != sha256.Sum256(b) || m.Size != int64(len(b)) {
			t.Errorf("file %s differs from its row", f.Name)
		}
		delete(byKey, f.Key)
		out = append(out, b)
	}
	for k := range byKey {
		if !e.removed[k] {
			t.Errorf("row with key %s has no file", k)
		}
	}
	return out
}

// uidls returns the stored identities.
func (e *fetchEnv) uidls() map[string]index.POP3UIDL {
	e.t.Helper()
	var out map[string]index.POP3UIDL
	err := e.st.Read(e.t.Context(), func(tx *index.ReadTx) error {
		acct, err := tx.Account(fetchAccount)
		if err != nil {
			return err
		}
		out, err = tx.POP3UIDLs(acct)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// removeLocal deletes the stored file of the message with this Subject, as
// a user would; its row stays (nothing rescans a POP3 folder).
func (e *fetchEnv) removeLocal(subject string) {
	t := e.t
	t.Helper()
	p, _ := maildir.FolderDir(e.root, fetchAccount, "INBOX")
	files, err := (&maildir.Dir{Path: p}).Scan()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		path := filepath.Join(p, f.Sub, f.Name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("\nSubject: "+subject+"\n")) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if e.removed == nil {
				e.removed = map[string]bool{}
			}
			e.removed[f.Key] = true
			return
		}
	}
	t.Fatalf("no stored message with Subject %q", subject)
}

// lf is a message as it is stored: CRLF line ends turned into LF.
func lf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// subjects names messages in failures.
func subjects(msgs [][]byte) []string {
	var out []string
	for _, m := range msgs {
		s := "?"
		if i := bytes.Index(m, []byte("Subject: ")); i >= 0 {
			s = string(m[i+9:])
			s = s[:strings.IndexAny(s, "\r\n")]
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// sameMessages reports whether got and want hold the same messages (LF line
// ends), each as often.
func sameMessages(got, want [][]byte) bool {
	count := map[string]int{}
	for _, m := range want {
		count[string(lf(m))]++
	}
	for _, m := range got {
		count[string(m)]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return len(got) == len(want)
}

// fetchSafely runs Fetch and checks that every message that left the
// server during the run is stored locally, byte for byte: nothing unread
// is deleted.
func (e *fetchEnv) fetchSafely(o pop3.FetchOptions) *pop3.FetchResult {
	t := e.t
	t.Helper()
	before := serverMessages(t, e.d.POP3Addr(), e.user, e.pass)
	res := e.fetch(t.Context(), o)
	after := serverMessages(t, e.d.POP3Addr(), e.user, e.pass)
	local := map[string]bool{}
	for _, m := range e.stored() {
		local[string(m)] = true
	}
	onServer := map[string]bool{}
	for _, m := range after {
		onServer[string(m)] = true
	}
	for uidl, m := range before {
		if !onServer[string(m)] && !local[string(lf(m))] {
			t.Errorf("UIDL %s (%s) was deleted on the server and is not stored", uidl, subjects([][]byte{m}))
		}
	}
	return res
}

func values(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, b := range m {
		out = append(out, b)
	}
	return out
}

func raws(msgs ...[]corpus.Message) [][]byte {
	var out [][]byte
	for _, ms := range msgs {
		for _, m := range ms {
			out = append(out, m.Raw)
		}
	}
	return out
}

// TestFetchReusedUIDL runs the fetcher against a Dovecot that really
// reuses UIDLs (pop3_uidl_format = %u, the IMAP UID, and a mailbox whose
// UIDs start again at 1): every new message is downloaded byte for byte
// before anything is deleted, and nothing unread is deleted.
func TestFetchReusedUIDL(t *testing.T) {
	del := testenv.User{Name: "reuse-del", Password: "reuse-del-pass"}
	days := testenv.User{Name: "reuse-days", Password: "reuse-days-pass"}
	keep := testenv.User{Name: "reuse-keep", Password: "reuse-keep-pass"}
	d := testenv.StartDovecot(t, del, days, keep, testenv.WithConfig("pop3_uidl_format = %u"))

	// reseed replaces the mailbox with msgs, numbered from UID 1 again.
	reseed := func(t *testing.T, u testenv.User, msgs []corpus.Message) {
		resetMailbox(t, d, u.Name)
		d.Seed(t, u.Name, msgs)
		got := serverMessages(t, d.POP3Addr(), u.Name, u.Password)
		for i, m := range msgs {
			if !bytes.Equal(got[strconv.Itoa(i+1)], m.Raw) {
				t.Fatalf("the server does not give UIDL %d to %s: %v", i+1, subjects([][]byte{m.Raw}), subjects(values(got)))
			}
		}
	}

	t.Run("keep=false", func(t *testing.T) {
		old, young := reuseGenerations()
		e := newFetchEnv(t, d, del)
		o := e.opts()
		o.Keep = false
		reseed(t, del, old)
		res := e.fetchSafely(o)
		if res.New != len(old) || res.Deleted != len(old) {
			t.Errorf("first run: %+v", *res)
		}
		reseed(t, del, young)
		res = e.fetchSafely(o)
		if res.New != len(young) || res.Deleted != len(young) {
			t.Errorf("run after the UIDLs were reused: %+v", *res)
		}
		if got := serverCount(t, d.POP3Addr(), del.Name, del.Password); got != 0 {
			t.Errorf("the server still has %d messages", got)
		}
		if got, want := e.stored(), raws(old, young); !sameMessages(got, want) {
			t.Errorf("stored %v, want %v", subjects(got), subjects(want))
		}
	})

	t.Run("delete_after_days", func(t *testing.T) {
		old, young := reuseGenerations()
		e := newFetchEnv(t, d, days)
		o := e.opts()
		o.DeleteAfterDays = 1
		t0 := time.Now()
		at := func(days int) func() {
			return pop3.SetTestClock(func() time.Time { return t0.AddDate(0, 0, days) })
		}
		reseed(t, days, old)
		restore := at(0)
		res := e.fetchSafely(o)
		restore()
		if res.New != len(old) || res.Deleted != 0 {
			t.Errorf("first run: %+v", *res)
		}

		// Another client takes the old messages; the new ones come with
		// the old UIDLs, and old 1 and 3 are due for deletion by then.
		emptyServer(t, d, days.Name, days.Password)
		reseed(t, days, young)
		restore = at(2)
		res = e.fetchSafely(o)
		restore()
		if res.New != len(young) || res.Deleted != 0 {
			t.Errorf("run after the UIDLs were reused: %+v", *res)
		}
		if got, want := e.stored(), raws(old, young); !sameMessages(got, want) {
			t.Errorf("stored %v, want %v", subjects(got), subjects(want))
		}

		// Two days later the new ones are due: deleted, as they are stored,
		// except new 4, whose local copy the user deleted meanwhile: it
		// stays on the server, and is not downloaded again.
		e.removeLocal("new message 4")
		restore = at(4)
		res = e.fetchSafely(o)
		restore()
		if res.New != 0 || res.Deleted != len(young)-1 || res.Unproven != 1 {
			t.Errorf("run when the new messages are due: %+v", *res)
		}
		left := values(serverMessages(t, d.POP3Addr(), days.Name, days.Password))
		if want := raws(young[3:4]); !slices.EqualFunc(left, want, bytes.Equal) {
			t.Errorf("the server has %v, want %v", subjects(left), subjects(want))
		}
		want := slices.Concat(raws(old), raws(young[:3]), raws(young[4:]))
		if got := e.stored(); !sameMessages(got, want) {
			t.Errorf("stored %v, want %v", subjects(got), subjects(want))
		}
		if u := e.uidls(); len(u) != 1 || u["4"].RFC822Size != int64(len(young[3].Raw)) {
			t.Errorf("identities %+v, want UIDL 4 only", u)
		}
	})

	// keep=true: nothing is due, but new 2 has changed the size of UIDL 2,
	// so the server reuses UIDLs: the headers of the others are compared
	// too, and new 1 and 3 are found although their sizes did not change.
	t.Run("keep=true", func(t *testing.T) {
		old, young := reuseGenerations()
		e := newFetchEnv(t, d, keep)
		reseed(t, keep, old)
		if res := e.fetchSafely(e.opts()); res.New != len(old) {
			t.Errorf("first run: %+v", *res)
		}
		emptyServer(t, d, keep.Name, keep.Password)
		reseed(t, keep, young)
		res := e.fetchSafely(e.opts())
		if res.New != len(young) || res.Reused != 3 || res.Deleted != 0 {
			t.Errorf("run after the UIDLs were reused: %+v", *res)
		}
		if res := e.fetchSafely(e.opts()); res.New != 0 || res.Reused != 0 {
			t.Errorf("next run: %+v", *res)
		}
		if got, want := e.stored(), raws(old, young); !sameMessages(got, want) {
			t.Errorf("stored %v, want %v", subjects(got), subjects(want))
		}
	})
}

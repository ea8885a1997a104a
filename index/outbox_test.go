package index_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

func outboxStore(t *testing.T) *index.Store {
	t.Helper()
	st, err := index.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// outboxFiles lists the outbox's message files (cur/ and new/).
func outboxFiles(t *testing.T, st *index.Store) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"cur", "new", "tmp"} {
		es, err := os.ReadDir(filepath.Join(st.Root(), ".postfach", "outbox", sub))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range es {
			names = append(names, sub+"/"+e.Name())
		}
	}
	return names
}

func outboxList(t *testing.T, st *index.Store, account string) []*index.OutboxMessage {
	t.Helper()
	var ms []*index.OutboxMessage
	if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.OutboxList(account)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return ms
}

const outboxMsg = "From: a@example.org\r\nTo: b@example.org\r\nSubject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.org>\r\n\r\nhello\r\n"

// TestEnqueue: a queued message is its row and its file (0600, the bytes
// as given, LF on disk), listed with its envelope; the feed announces it;
// OutboxDelete removes both.
func TestEnqueue(t *testing.T) {
	st := outboxStore(t)
	ctx := context.Background()
	sub := st.Subscribe(0)
	defer sub.Close()
	env := index.Envelope{From: "a@example.org", To: []string{"b@example.org", "hidden@example.org"}}
	m, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
	if err != nil {
		t.Fatal(err)
	}
	c := <-sub.C()
	if c.Kind != index.OutboxQueued || c.Name != "acct" || c.Account == 0 {
		t.Errorf("feed: %+v, want outbox-queued of acct", c)
	}
	data, err := os.ReadFile(m.Path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(outboxMsg, "\r\n", "\n"); string(data) != want {
		t.Errorf("file holds %q, want %q", data, want)
	}
	if fi, _ := os.Stat(m.Path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	ls := outboxList(t, st, "acct")
	if len(ls) != 1 {
		t.Fatalf("listed %d messages, want 1", len(ls))
	}
	got := ls[0]
	if got.ID != m.ID || got.From != env.From || got.Subject != "grüße" || got.MessageID != "m1@example.org" ||
		got.Size != int64(len(outboxMsg)) || got.State != "queued" || got.Path != m.Path || got.Account != "acct" {
		t.Errorf("listed %+v", got)
	}
	want := []index.OutboxRecipient{{Addr: "b@example.org", State: "pending"}, {Addr: "hidden@example.org", State: "pending"}}
	if !slices.Equal(got.Recipients, want) {
		t.Errorf("recipients %+v, want %+v", got.Recipients, want)
	}
	if len(outboxList(t, st, "other")) != 0 || len(outboxList(t, st, "")) != 1 {
		t.Error("listing by account is wrong")
	}
	if err := st.OutboxDelete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if err := st.OutboxDelete(ctx, m.ID); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if fs := outboxFiles(t, st); len(fs) != 0 || len(outboxList(t, st, "")) != 0 {
		t.Errorf("after delete: files %v", fs)
	}
}

// TestEnqueueBothOrNeither: an Enqueue cut off at any stage of the
// delivery sequence leaves neither row nor file; malformed envelopes are
// refused before anything is written.
func TestEnqueueBothOrNeither(t *testing.T) {
	st := outboxStore(t)
	ctx := context.Background()
	env := index.Envelope{From: "a@example.org", To: []string{"b@example.org"}}
	for _, stage := range []string{"renamed", "synced"} {
		index.SetTestHookEnqueue(func(s string) error {
			if s == stage {
				return errors.New("crash at " + s)
			}
			return nil
		})
		_, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
		index.SetTestHookEnqueue(nil)
		if err == nil {
			t.Fatalf("%s: Enqueue succeeded", stage)
		}
		if fs := outboxFiles(t, st); len(fs) != 0 || len(outboxList(t, st, "")) != 0 {
			t.Errorf("%s: left files %v", stage, fs)
		}
	}
	for _, bad := range []index.Envelope{
		{From: "a@example.org"},
		{From: "a@example.org", To: []string{"b@example.org\r\nRCPT TO:<x@y>"}},
		{From: "<a@example.org>", To: []string{"b@example.org"}},
	} {
		if _, err := st.Enqueue(ctx, "acct", bad, strings.NewReader(outboxMsg)); err == nil {
			t.Errorf("envelope %+v accepted", bad)
		}
	}
	if fs := outboxFiles(t, st); len(fs) != 0 {
		t.Errorf("refused envelopes left files %v", fs)
	}
	// A commit that fails (the account row cannot be made in a
	// read-only view) leaves nothing either.
	if _, err := st.DryRun().Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg)); err == nil {
		t.Error("a dry run enqueued")
	}
}

// TestOutboxLifecycle: claim, crash recovery (counted), outcomes,
// follow-ups and the row's end.
func TestOutboxLifecycle(t *testing.T) {
	st := outboxStore(t)
	ctx := context.Background()
	env := index.Envelope{From: "a@example.org", To: []string{"b@example.org", "c@example.org"}}
	m, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
	if err != nil {
		t.Fatal(err)
	}
	due := func(now time.Time) []*index.OutboxMessage {
		var ms []*index.OutboxMessage
		if err := st.Read(ctx, func(tx *index.ReadTx) error {
			ms, err = tx.OutboxDue("acct", now, false, false)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return ms
	}
	if len(due(time.Now())) != 1 {
		t.Fatal("a new message is not due")
	}
	w := func(fn func(tx *index.Tx) error) {
		t.Helper()
		if err := st.Write(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	w(func(tx *index.Tx) error { return tx.OutboxSending(m.ID) })
	if len(due(time.Now())) != 0 {
		t.Fatal("a message being sent is due")
	}
	if err := st.OutboxDelete(ctx, m.ID); err == nil {
		t.Error("deleted a message being sent")
	}
	// A crash: the next sender finds it "sending".
	w(func(tx *index.Tx) error {
		n, err := tx.OutboxRecover("acct")
		if n != 1 {
			t.Errorf("recovered %d, want 1", n)
		}
		return err
	})
	// b took it, c deferred.
	next := time.Now().Add(time.Hour).Truncate(time.Second)
	w(func(tx *index.Tx) error { return tx.OutboxSending(m.ID) })
	w(func(tx *index.Tx) error {
		return tx.OutboxRecord(index.OutboxOutcome{ID: m.ID, State: "queued", NextAttempt: next, LastReply: "451 later\r\nplease",
			Recipients: []index.OutboxRecipient{{Addr: "b@example.org", State: "sent", Reply: "250 ok"}, {Addr: "c@example.org", State: "pending", Reply: "451 later"}},
			Followups:  index.FollowWarning, Warned: true})
	})
	ls := outboxList(t, st, "acct")
	got := ls[0]
	if got.Attempts != 2 || got.Interrupted != 1 || !got.NextAttempt.Equal(next) || got.LastReply != "451 later please" ||
		!got.Warned || got.Followups != index.FollowWarning || got.Recipients[0].State != "sent" || got.Recipients[1].State != "pending" {
		t.Errorf("after a deferral: %+v", got)
	}
	if len(due(time.Now())) != 0 || len(due(next)) != 1 {
		t.Error("the deferred message is due at the wrong time")
	}
	if err := st.OutboxFollowupDone(ctx, m.ID, index.FollowWarning); err != nil {
		t.Fatal(err)
	}
	w(func(tx *index.Tx) error { return tx.OutboxSending(m.ID) })
	w(func(tx *index.Tx) error {
		return tx.OutboxRecord(index.OutboxOutcome{ID: m.ID, State: "sent", LastReply: "250 ok",
			Recipients: []index.OutboxRecipient{{Addr: "c@example.org", State: "sent", Reply: "250 ok"}}, Followups: index.FollowSentCopy})
	})
	if len(outboxList(t, st, "acct")) != 0 {
		t.Error("a sent message is listed")
	}
	var fu []*index.OutboxMessage
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		fu, err = tx.OutboxFollowups("acct")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(fu) != 1 || fu[0].Followups != index.FollowSentCopy {
		t.Fatalf("follow-ups %+v", fu)
	}
	if err := st.OutboxFollowupDone(ctx, m.ID, index.FollowSentCopy); err != nil {
		t.Fatal(err)
	}
	if fs := outboxFiles(t, st); len(fs) != 0 {
		t.Errorf("a sent message left %v", fs)
	}
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		_, err := tx.OutboxMessage(m.ID)
		return err
	}); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("row after its follow-ups: %v", err)
	}
}

// TestOutboxCommitAndFile: a result is committed with the next claim; a
// sent message with nothing to file goes at once; follow-ups are filed
// (rows with UID 0, for the sync to upload) in the commit that clears
// them, and then the sent message goes.
func TestOutboxCommitAndFile(t *testing.T) {
	st := outboxStore(t)
	ctx := context.Background()
	env := index.Envelope{From: "a@example.org", To: []string{"b@example.org"}}
	m1, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.OutboxCommit(ctx, nil, m1.ID); err != nil {
		t.Fatal(err)
	}
	sent := func(id index.OutboxID, fu int) index.OutboxOutcome {
		return index.OutboxOutcome{ID: id, State: "sent", LastReply: "250 ok", Followups: fu,
			Recipients: []index.OutboxRecipient{{Addr: "b@example.org", State: "sent", Reply: "250 ok"}}}
	}
	if err := st.OutboxCommit(ctx, []index.OutboxOutcome{sent(m1.ID, 0)}, m2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(m1.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file of a sent message stays: %v", err)
	}
	if ls := outboxList(t, st, "acct"); len(ls) != 1 || ls[0].ID != m2.ID || ls[0].State != "sending" {
		t.Fatalf("listed %+v", ls)
	}
	// A claim of a message not queued commits nothing.
	if err := st.OutboxCommit(ctx, []index.OutboxOutcome{sent(m2.ID, index.FollowSentCopy)}, m1.ID); !errors.Is(err, index.ErrNotFound) {
		t.Errorf("claim of a sent message: %v", err)
	}
	if err := st.OutboxCommit(ctx, []index.OutboxOutcome{sent(m2.ID, index.FollowSentCopy)}, 0); err != nil {
		t.Fatal(err)
	}
	var acct index.AccountID
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		acct, err = tx.Account("acct")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f, err := st.CreateFolder(ctx, acct, "Sent", nil)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(m2.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if err := st.OutboxFile(ctx, []index.OutboxFiling{{Folder: f.ID, R: file, Flags: 0}}, map[index.OutboxID]int{m2.ID: index.FollowSentCopy}); err != nil {
		t.Fatal(err)
	}
	rows := rowsOf(t, st, f)
	if len(rows) != 1 || rows[0].UID != 0 || rows[0].Header.Subject != "grüße" {
		t.Errorf("Sent rows %+v", rows)
	}
	if fs := outboxFiles(t, st); len(fs) != 0 || len(outboxList(t, st, "")) != 0 {
		t.Errorf("outbox keeps %v", fs)
	}
}

// TestCleanOutbox: files without a row older than an hour go (a crash
// between an Enqueue's rename and its commit); young ones and queued
// messages' files stay.
func TestCleanOutbox(t *testing.T) {
	st := outboxStore(t)
	ctx := context.Background()
	m, err := st.Enqueue(ctx, "acct", index.Envelope{From: "a@example.org", To: []string{"b@example.org"}}, strings.NewReader(outboxMsg))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(st.Root(), ".postfach", "outbox")
	old := time.Now().Add(-2 * time.Hour)
	for _, name := range []string{"cur/1700000000.M1P1.host:2,S", "tmp/1700000000.M2P1.host", "cur/1700000000.M3P1.young:2,S"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(name, "young") {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chtimes(m.Path, old, old); err != nil {
		t.Fatal(err)
	}
	n, err := st.CleanOutbox(ctx)
	if err != nil || n != 2 {
		t.Errorf("CleanOutbox removed %d (%v), want 2", n, err)
	}
	got := outboxFiles(t, st)
	want := []string{"cur/" + filepath.Base(m.Path), "cur/1700000000.M3P1.young:2,S"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("left %v, want %v", got, want)
	}
}

// TestOutboxFileAfterCrash: a crash between a filing's renames and its
// commit leaves the copies in Sent while their follow-ups are still due;
// the next process's filing (a new Store) finds them by key, as Commit
// named them or as the sync renamed them since, files no second copy and
// clears the follow-ups all the same. A follow-up without a leftover is
// filed.
func TestOutboxFileAfterCrash(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	env := index.Envelope{From: "a@example.org", To: []string{"b@example.org"}}
	var ms []*index.OutboxMessage
	for range 3 {
		m, err := st.Enqueue(ctx, "acct", env, strings.NewReader(outboxMsg))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		id := m.ID
		if err := st.OutboxCommit(ctx, nil, id); err != nil {
			t.Fatal(err)
		}
		o := index.OutboxOutcome{ID: id, State: "sent", LastReply: "250 ok", Followups: index.FollowSentCopy,
			Recipients: []index.OutboxRecipient{{Addr: "b@example.org", State: "sent", Reply: "250 ok"}}}
		if err := st.OutboxCommit(ctx, []index.OutboxOutcome{o}, 0); err != nil {
			t.Fatal(err)
		}
	}
	var acct index.AccountID
	if err := st.Read(ctx, func(tx *index.ReadTx) error {
		acct, err = tx.Account("acct")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	f, err := st.CreateFolder(ctx, acct, "Sent", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.Dir(*f)
	if err != nil {
		t.Fatal(err)
	}
	// What the crashed filing left: the first copy as Commit named it,
	// the second as the sync renamed it after uploading it.
	left := []string{index.FollowupKey(ms[0], index.FollowSentCopy) + ":2,S", index.FollowupKey(ms[1], index.FollowSentCopy) + ",U=7:2,S"}
	for _, name := range left {
		if err := os.WriteFile(filepath.Join(d.Path, "cur", name), []byte(strings.ReplaceAll(outboxMsg, "\r\n", "\n")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()

	st, err = index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var fs []index.OutboxFiling
	done := map[index.OutboxID]int{}
	for _, m := range ms {
		file, err := os.Open(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		fs = append(fs, index.OutboxFiling{Folder: f.ID, R: file, Flags: maildir.FlagSeen, Key: index.FollowupKey(m, index.FollowSentCopy)})
		done[m.ID] = index.FollowSentCopy
	}
	if err := st.OutboxFile(ctx, fs, done); err != nil {
		t.Fatal(err)
	}
	es, err := d.Scan()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]int{}
	for _, e := range es {
		keys[e.Key]++
	}
	if len(es) != 3 || len(keys) != 3 {
		t.Errorf("Sent holds %+v, want one copy of each of the 3", es)
	}
	for _, m := range ms {
		if keys[index.FollowupKey(m, index.FollowSentCopy)] != 1 {
			t.Errorf("message %d: %d copies in Sent", m.ID, keys[index.FollowupKey(m, index.FollowSentCopy)])
		}
	}
	if fs := outboxFiles(t, st); len(fs) != 0 || len(outboxList(t, st, "")) != 0 {
		t.Errorf("outbox keeps %v", fs)
	}
}

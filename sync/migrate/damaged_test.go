package migrate_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/mirrortest"
	"github.com/postfach/postfach/sync/migrate"
)

// TestDamagedStoredCopy: a stored file shorter than the size the source
// server gave (what a download cut short left before issue 8's fix) is
// never uploaded, never taken as the message when the destination has a
// copy of its size, and is reported by name; the verification matches
// Message-ID and exact size, not counts. Before, migrate uploaded the
// truncated copy and printed "verified" while its own table showed fewer
// bytes at the destination.
func TestDamagedStoredCopy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	msgs := corpus.Generate(21, 20, corpus.Options{Folders: []string{"INBOX"}, BigAttachmentEvery: 10, BigAttachmentSize: 1 << 20})
	big := msgs[9]
	if len(big.Raw) < 1<<20 {
		t.Fatalf("message 9 has %d bytes, want the big one", len(big.Raw))
	}
	e.d.Seed(t, alice.Name, msgs)
	e.pull()
	src := mailbox(t, e.d, alice.Name)

	// Damage the big message's stored copy: keep its first half, as a cut
	// connection did.
	file := storedFile(t, e.root, big.MessageID)
	full, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	short := full[:len(full)/2]
	if err := os.WriteFile(file, short, 0o600); err != nil {
		t.Fatal(err)
	}

	// 1. The damaged message is not copied; the rest is; the report and
	// the error say which message and why.
	rep, err := migrate.Run(context.Background(), e.options())
	checkDamaged(t, "first run", rep, err, big.MessageID)
	if tot := rep.Totals(); tot.Copied != len(msgs)-1 || tot.Missing != 1 || tot.Extra != 0 {
		t.Errorf("first run: %+v, want %d copied, 1 missing", tot, len(msgs)-1)
	}
	bigSum := sha256.Sum256(big.Raw)
	without := map[string][]mirrortest.MessageState{"INBOX": slices.DeleteFunc(slices.Clone(src["INBOX"]),
		func(m mirrortest.MessageState) bool { return m.Sum == bigSum })}
	if len(without["INBOX"]) != len(msgs)-1 {
		t.Fatalf("the big message is not in alice's INBOX as seeded")
	}
	sameMailboxes(t, without, mailbox(t, e.d, bob.Name), nil)

	// 2. The destination holds the truncated copy (what an earlier run
	// uploaded): it is not the message.
	shortCRLF := bytes.ReplaceAll(short, []byte("\n"), []byte("\r\n"))
	e.d.Seed(t, bob.Name, []corpus.Message{{Folder: "INBOX", Date: big.Date, MessageID: big.MessageID, Raw: shortCRLF, Flags: []imap.Flag{}}})
	rep, err = migrate.Run(context.Background(), e.options())
	checkDamaged(t, "with a truncated copy at the destination", rep, err, big.MessageID)
	if tot := rep.Totals(); tot.Copied != 0 || tot.Missing != 1 || tot.Extra != 1 {
		t.Errorf("with a truncated copy at the destination: %+v, want 1 missing and 1 extra", tot)
	}

	// 3. Once the stored copy is whole again, it is copied and verified;
	// the truncated copy stays an extra message.
	if err := os.WriteFile(file, full, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err = migrate.Run(context.Background(), e.options())
	if err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	if tot := rep.Totals(); tot.Copied != 1 || tot.Missing != 0 || tot.Extra != 1 || !rep.Complete() || len(rep.Folders[0].Damaged) != 0 {
		t.Errorf("after the repair: %+v, want 1 copied, complete, 1 extra", tot)
	}
	dest := mailbox(t, e.d, bob.Name)
	got := slices.DeleteFunc(slices.Clone(dest["INBOX"]), func(m mirrortest.MessageState) bool { return m.Sum == sha256.Sum256(shortCRLF) })
	if len(got) != len(dest["INBOX"])-1 {
		t.Errorf("the truncated copy is not on the destination once")
	}
	sameMailboxes(t, src, map[string][]mirrortest.MessageState{"INBOX": got}, nil)
}

func checkDamaged(t *testing.T, when string, rep *migrate.Report, err error, msgID string) {
	t.Helper()
	if rep == nil {
		t.Fatalf("%s: no report (%v)", when, err)
	}
	if rep.Complete() {
		t.Errorf("%s: the report says complete", when)
	}
	if err == nil || !strings.Contains(err.Error(), "<"+msgID+">") || !strings.Contains(err.Error(), "damaged") || strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error %q, want one line naming <%s> as damaged", when, err, msgID)
	}
	if len(rep.Folders) != 1 || len(rep.Folders[0].Damaged) != 1 {
		t.Errorf("%s: report %+v, want INBOX with one damaged message", when, rep.Folders)
	}
}

// storedFile returns the path of alice's stored copy of a message.
func storedFile(t *testing.T, root, msgID string) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "alice", "INBOX", "[cn][ue][rw]", "*")) // cur/ and new/ (unread)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte("Message-ID: <"+msgID+">")) {
			return f
		}
	}
	t.Fatalf("no stored file holds <%s>", msgID)
	return ""
}

package imapsync_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
	"github.com/postfach/postfach/sync/imapsync"
)

// lf (model_test.go) is a message in the store's form: CRLF turned into
// LF, the one conversion the store makes (maildir/crlf.go, the README).

// wire is a stored message as postfach sends it: LF not after a CR turned
// into CRLF (maildir.CRLFWriter).
func wire(t testing.TB, stored []byte) []byte {
	var b bytes.Buffer
	if _, err := maildir.NewCRLFWriter(&b).Write(stored); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestMalformedIMAP: every kind of the malformed corpus (internal/corpus)
// comes down from a real Dovecot and goes up to it byte for byte, without
// a failure or a stall, the three messages sharing one Message-ID with
// different content all kept on both sides; a further run changes nothing;
// then the full-text index takes them all, quickly, and finds each marker
// the message's Subject or text carries.
//
// Dovecot alters some on the way (see testenv.SeedMalformed): it serves a
// stored bare LF as CRLF, NUL as 0x80, and changes bare CRs. Each check is
// therefore against what the server holds, fetched back, and the test
// logs the kinds it alters.
func TestMalformedIMAP(t *testing.T) {
	e := newEnv(t)
	e.opts = func(o *imapsync.Options) { o.CreateFolders = true }
	user := testenv.DefaultUser.Name
	seeded := e.d.SeedMalformed(t, user, "INBOX")
	for _, s := range seeded {
		if s.Altered || !s.Appended {
			t.Logf("Dovecot: %s", s)
		}
	}

	// Down.
	start := time.Now()
	res, _ := e.sync()
	t.Logf("down: %d messages, %d bytes in %v", res.Totals().New, res.Totals().Bytes, time.Since(start))
	e.compare() // every file is the server's message, CRLF turned into LF; rows match files
	byUID := map[uint32]maildir.Entry{}
	for _, en := range e.entries("INBOX") {
		byUID[en.UID] = en
	}
	down := map[string][]byte{} // kind -> stored file
	for _, s := range seeded {
		en, ok := byUID[s.UID]
		if !ok {
			t.Errorf("%s: uid %d not stored", s.Name, s.UID)
			continue
		}
		got, err := os.ReadFile(e.dir("INBOX").FilePath(en))
		if err != nil {
			t.Fatal(err)
		}
		down[s.Name] = got
		if !bytes.Equal(got, lf(s.Server)) {
			t.Errorf("%s: stored %d bytes, not the server's %d with CRLF turned into LF", s.Name, len(got), len(s.Server))
		}
		if !s.Altered && !bytes.Equal(got, lf(s.Raw)) {
			t.Errorf("%s: stored %d bytes, not the message's %d with CRLF turned into LF", s.Name, len(got), len(s.Raw))
		}
	}
	if n := e.localCopies("INBOX", corpus.DupMessageID); n != 3 {
		t.Errorf("%d local messages with Message-ID %s, want the 3 different ones", n, corpus.DupMessageID)
	}

	// Up: a mail program leaves each kind in a new local folder, in the
	// store's form.
	kinds := corpus.Malformed()
	written := map[string][]byte{} // file key -> bytes
	for i, k := range kinds {
		key := fmt.Sprintf("malformed%02d", i)
		written[key] = lf(k.Raw)
		e.writeForeign("Up", key, written[key])
	}
	start = time.Now()
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded != len(kinds) || tot.Refused != 0 || tot.New != 0 {
		t.Errorf("up: %d uploaded, %d refused, %d new; want %d, 0, 0", tot.Uploaded, tot.Refused, tot.New, len(kinds))
	}
	t.Logf("up: %d messages in %v", res.Totals().Uploaded, time.Since(start))

	// A run after both changes nothing.
	res, _ = e.sync()
	if tot := res.Totals(); tot.Uploaded+tot.New+tot.Expunged+tot.ExpungedRemote+tot.FlagsChanged+tot.FlagsPushed != 0 {
		t.Errorf("the run after: %+v, want nothing done", tot)
	}

	// Each local file is as the mail program left it, and the server holds
	// what postfach sent (its wire form): compared with the same bytes
	// APPENDed by the test to a reference folder and fetched back, since
	// Dovecot alters some.
	c := e.d.Client(t, user)
	upUID := map[string]uint32{} // kind -> uid in Up
	for _, en := range e.entries("Up") {
		got, err := os.ReadFile(e.dir("Up").FilePath(en))
		if err != nil {
			t.Fatal(err)
		}
		var i int
		if _, err := fmt.Sscanf(en.Key, "malformed%02d", &i); err != nil || !bytes.Equal(got, written[en.Key]) {
			t.Errorf("local file %s changed: %d bytes (%v)", en.Key, len(got), err)
			continue
		}
		upUID[kinds[i].Name] = en.UID
	}
	if err := c.Create("Ref", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for i, k := range kinds {
		sent := wire(t, written[fmt.Sprintf("malformed%02d", i)])
		cmd := c.Append("Ref", int64(len(sent)), nil)
		cmd.Write(sent)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("%s: append to Ref: %v", k.Name, err)
		}
	}
	ref := fetchAll(t, c, "Ref", false)
	up := fetchAll(t, c, "Up", true)
	if err := c.Unselect().Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete("Ref").Wait(); err != nil { // not for syncing
		t.Fatal(err)
	}
	if len(ref) != len(kinds) || len(up) != len(kinds) {
		t.Fatalf("the server holds %d messages in Up and %d in Ref, want %d each", len(up), len(ref), len(kinds))
	}
	for i, k := range kinds {
		uid, ok := upUID[k.Name]
		if !ok {
			t.Errorf("%s: not uploaded (no UID)", k.Name)
			continue
		}
		if !bytes.Equal(up[uid], ref[uint32(i+1)]) {
			t.Errorf("%s: the server holds %d bytes, want %d (what postfach had to send)", k.Name, len(up[uid]), len(ref[uint32(i+1)]))
		}
	}
	if n := strings.Count(serverIDs(up), corpus.DupMessageID+">"); n != 3 {
		t.Errorf("%d server messages in Up with Message-ID %s, want the 3 different ones", n, corpus.DupMessageID)
	}

	// A lost index is rebuilt from the files: every message re-matched,
	// nothing downloaded or uploaded again (the identities of the
	// malformed messages are the same from the file and from the server)...
	//
	// ... except, a known limitation (reported, not fixed here), an
	// uploaded message the server stored with another size: Dovecot drops
	// the CR that ends the bare-CR message. Re-matching is by content
	// identity (Message-ID or date, and size; the ,U= tag alone is not
	// trusted), so that local file is uploaded again and the server's copy
	// downloaded beside it. The check allows exactly those, by name.
	resized := map[string]bool{} // keys of Up files whose server copy has another size
	for i, k := range kinds {
		key := fmt.Sprintf("malformed%02d", i)
		if len(up[upUID[k.Name]]) != len(wire(t, written[key])) {
			resized[key] = true
			t.Logf("%s: sent %d bytes, the server holds %d", k.Name, len(wire(t, written[key])), len(up[upUID[k.Name]]))
		}
	}
	e.store.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(index.DefaultPath(e.root) + suffix)
	}
	e.openIndex()
	res, _ = e.sync()
	tot := res.Totals()
	if tot.New != len(resized) || tot.Uploaded != len(resized) || tot.Rebuilt != 2*len(kinds) || tot.Expunged+tot.ExpungedRemote != 0 {
		t.Errorf("after losing the index: %+v, want %d rebuilt, and %d uploaded and downloaded again", tot, 2*len(kinds), len(resized))
	}
	for _, f := range res.Folders {
		for _, a := range f.Actions {
			if a.Op == imapsync.OpUpload && !resized[a.Key] {
				t.Errorf("after losing the index: %s uploaded again", a.Key)
			}
		}
	}

	// The full-text index takes them all (both folders) quickly.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start = time.Now()
	n, err := e.store.IndexPending(ctx, e.root, nil)
	if err != nil {
		t.Fatalf("IndexPending: %v", err)
	}
	t.Logf("indexed %d messages in %v", n, time.Since(start))
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("indexing %d messages took %v", n, d)
	}
	upByKind := map[string][]byte{}
	for i, k := range kinds {
		upByKind[k.Name] = written[fmt.Sprintf("malformed%02d", i)]
	}
	testenv.CheckMalformedSearch(t, e.store, map[string]map[string][]byte{"INBOX": down, "Up": upByKind})
}

// fetchAll returns folder's messages (BODY[]) by UID (byUID) or by
// sequence number.
func fetchAll(t *testing.T, c *imapclient.Client, folder string, byUID bool) map[uint32][]byte {
	t.Helper()
	if _, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.SeqSet
	all.AddRange(1, 0)
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("fetch %s: %v", folder, err)
	}
	out := map[uint32][]byte{}
	for _, m := range msgs {
		n := m.SeqNum
		if byUID {
			n = uint32(m.UID)
		}
		out[n] = m.FindBodySection(section)
	}
	return out
}

// serverIDs is every Message-ID field of the messages, one a line.
func serverIDs(msgs map[uint32][]byte) string {
	var b strings.Builder
	for _, raw := range msgs {
		b.WriteString(index.ParseHeader(raw).MessageID)
		b.WriteString(">\n")
	}
	return b.String()
}

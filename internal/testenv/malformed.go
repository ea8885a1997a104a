package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
)

// SeededMalformed is one kind of the malformed corpus as it went into a
// Dovecot mailbox, and as Dovecot then serves it.
type SeededMalformed struct {
	corpus.MalformedKind
	UID uint32
	// Appended is false for a kind Dovecot refused to APPEND (the error
	// is in Refused): it was written into the Maildir instead.
	Appended bool
	Refused  string
	// Server is the message as Dovecot serves it (BODY[], CRLF): what a
	// client can download. It differs from Raw where Dovecot alters a
	// message; Altered says so.
	Server  []byte
	Altered bool
}

// SeedMalformed puts every kind of corpus.Malformed into user's folder, in
// corpus order (UIDs follow it): by IMAP APPEND, and for a kind Dovecot
// refuses, written into its Maildir (with LF line ends, as Dovecot stores
// mail) so that it is there all the same. It fetches each back as Dovecot
// serves it.
func (d *Dovecot) SeedMalformed(t testing.TB, user, folder string) []SeededMalformed {
	t.Helper()
	c := d.Client(t, user)
	if folder != "INBOX" {
		if err := c.Create(folder, nil).Wait(); err != nil {
			t.Fatalf("create %s: %v", folder, err)
		}
	}
	var out []SeededMalformed
	for i, k := range corpus.Malformed() {
		s := SeededMalformed{MalformedKind: k, Appended: true}
		cmd := c.Append(folder, int64(len(k.Raw)), nil)
		_, werr := cmd.Write(k.Raw)
		cerr := cmd.Close()
		_, err := cmd.Wait()
		if err == nil {
			err = werr
		}
		if err == nil {
			err = cerr
		}
		if err != nil {
			s.Appended, s.Refused = false, err.Error()
			m := corpus.MalformedMessages(folder)[i]
			if err := d.MaildirWriter(user).Write(m); err != nil {
				t.Fatalf("%s: write into the Maildir: %v", k.Name, err)
			}
		}
		out = append(out, s)
	}
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	for i := range out {
		msgs, err := c.Fetch(imap.SeqSetNum(uint32(i+1)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("%s: fetch message %d of %s: %v (%d messages)", out[i].Name, i+1, folder, err, len(msgs))
		}
		out[i].UID = uint32(msgs[0].UID)
		out[i].Server = msgs[0].FindBodySection(section)
		out[i].Altered = !bytes.Equal(out[i].Server, out[i].Raw)
	}
	return out
}

// String tells what Dovecot did with the kind.
func (s SeededMalformed) String() string {
	how := "appended"
	if !s.Appended {
		how = "refused (" + s.Refused + "), written into the Maildir"
	}
	if s.Altered {
		how += fmt.Sprintf(", served altered (%d bytes, sent %d)", len(s.Server), len(s.Raw))
	}
	return s.Name + ": " + how
}

// CheckMalformedSearch asserts, after index.IndexPending, that nothing
// waits for its full-text entry and that searching each kind's marker
// finds the stored message (by folder and SHA-256) wherever its Subject or
// text carries the marker as the index decodes them. stored maps folder ->
// kind name -> the stored file. It fails when fewer than 30 markers were
// looked for (the check would prove little).
func CheckMalformedSearch(t testing.TB, st *index.Store, stored map[string]map[string][]byte) {
	t.Helper()
	looked := 0
	err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		if n, err := tx.PendingText(); err != nil || n != 0 {
			t.Errorf("%d messages still wait for their full-text entry (%v)", n, err)
		}
		for folder, kinds := range stored {
			for _, k := range corpus.Malformed() {
				raw, ok := kinds[k.Name]
				if !ok || k.Marker == "" {
					continue
				}
				if !strings.Contains(index.ParseHeader(raw).Subject, k.Marker) &&
					!strings.Contains(index.ExtractText(context.Background(), bytes.NewReader(raw), 128<<10), k.Marker) {
					continue // not in what the index decodes (e.g. one bare-CR "line")
				}
				looked++
				hits, err := tx.Search(k.Marker, 100)
				if err != nil {
					return fmt.Errorf("search %s: %w", k.Marker, err)
				}
				sum, found := sha256.Sum256(raw), false
				for _, h := range hits {
					found = found || h.FolderName == folder && h.SHA256 == sum
				}
				if !found {
					t.Errorf("%s: searching %s finds %d messages, not the one in %s", k.Name, k.Marker, len(hits), folder)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if looked < 30 {
		t.Errorf("only %d markers looked for", looked)
	}
}

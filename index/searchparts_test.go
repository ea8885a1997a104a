package index_test

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"

	"github.com/postfach/postfach/index"
)

// TestExtractParts: ExtractContent names each leaf MIME part with its
// type, its decoded file name (RFC 2047 and RFC 2231) and whether it is an
// attachment; a message/rfc822 part is looked into unless it is encoded.
func TestExtractParts(t *testing.T) {
	raw := strings.ReplaceAll(`From: a@example.org
Subject: parts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="m"

--m
Content-Type: multipart/alternative; boundary="a"

--a
Content-Type: text/plain; charset=utf-8

plain text
--a
Content-Type: TEXT/HTML; charset=utf-8

<p>html text</p>
--a--
--m
Content-Type: application/pdf; name="=?utf-8?q?Gr=C3=BC=C3=9Fe.pdf?="
Content-Disposition: attachment

JVBERi0xLjQK
--m
Content-Type: image/png
Content-Disposition: inline; filename*=utf-8''%C3%A9t%C3%A9.png

iVBORw0KGgo=
--m
Content-Type: text/plain
Content-Disposition: attachment

attached text, not indexed
--m
Content-Type: message/rfc822

Subject: inner
Content-Type: text/csv; name=data.csv

a,b
--m
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

U3ViamVjdDogeAoKeAo=
--m--
`, "\n", "\r\n")
	text, parts := index.ExtractContent(context.Background(), strings.NewReader(raw), 1<<20)
	want := []index.Part{
		{Type: "text/plain"},
		{Type: "text/html"},
		{Type: "application/pdf", Name: "Grüße.pdf", Attachment: true},
		{Type: "image/png", Name: "été.png", Attachment: true},
		{Type: "text/plain", Attachment: true},
		{Type: "text/csv", Name: "data.csv", Attachment: true},
		{Type: "message/rfc822"},
	}
	if !reflect.DeepEqual(parts, want) {
		t.Errorf("parts:\n%+v\nwant\n%+v", parts, want)
	}
	if !strings.Contains(text, "plain text") || !strings.Contains(text, "html text") || strings.Contains(text, "attached text") {
		t.Errorf("text %q", text)
	}
}

// TestSearchOlderIndex: an index made before schema version 11 has its
// full-text entries made anew when opened (every message queued for
// IndexPending), so that its messages get their Cc column, folded words
// and attachment names.
func TestSearchOlderIndex(t *testing.T) {
	fs := searchStore(t)
	ctx := context.Background()
	if _, err := fs.st.IndexPending(ctx, fs.st.Root(), nil); err != nil {
		t.Fatal(err)
	}
	root := fs.st.Root()
	fs.st.Close()
	db, err := sql.Open("sqlite", index.DefaultPath(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE parts`, `DROP INDEX messages_sort_date`, `DROP INDEX messages_folder_sort_date`,
		`DROP TABLE messages_fts`, `CREATE VIRTUAL TABLE messages_fts USING fts5 (subject, from_addr, to_addr, body,
			content = '', contentless_delete = 1, tokenize = 'unicode61 remove_diacritics 2')`,
		`INSERT INTO messages_fts(rowid, subject, from_addr, to_addr, body) SELECT id, subject, from_addr, to_addr || ' ' || cc_addr, '' FROM messages`,
		`PRAGMA user_version = 10`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var pending int
	st.Read(ctx, func(tx *index.ReadTx) error { pending, err = tx.PendingText(); return err })
	if pending != len(fs.byName) {
		t.Fatalf("%d messages pending after the migration, want all %d", pending, len(fs.byName))
	}
	if _, err := st.IndexPending(ctx, root, nil); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{"cc:carol": 1, "quarterly": 1, "from:alice": 1} {
		var n int
		err := st.Read(ctx, func(tx *index.ReadTx) error {
			hits, err := tx.Search(q, 10)
			n = len(hits)
			return err
		})
		if err != nil || n != want {
			t.Errorf("search %q: %d hits, %v; want %d", q, n, err, want)
		}
	}
}

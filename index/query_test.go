package index_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postfach/postfach/index"
)

func TestParseQuery(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`hello`, `text:"hello"`},
		{`hello world`, `(and text:"hello" text:"world")`},
		{`a AND b OR c`, `(or (and text:"a" text:"b") text:"c")`},
		{`a OR b c`, `(or text:"a" (and text:"b" text:"c"))`},
		{`a (b OR c)`, `(and text:"a" (or text:"b" text:"c"))`},
		{`NOT a -b`, `(and (not text:"a") (not text:"b"))`},
		{`NOT NOT a`, `(not (not text:"a"))`},
		{`-(a OR b)`, `(not (or text:"a" text:"b"))`},
		{`e-mail a-b -c`, `(and text:"e-mail" text:"a-b" (not text:"c"))`},
		{`and or not`, `(and text:"and" text:"or" text:"not")`},
		{`"a phrase" pre*`, `(and text:"a phrase" text:"pre"*)`},
		{`"say \"hi\""*`, `text:"say \"hi\""*`},
		{`From:alice@example.org`, `from:"alice@example.org"`},
		{`to:"Bob Smith" cc:x subject:Grüße body:y attachment:report.pdf`,
			`(and to:"Bob Smith" cc:"x" subject:"Grüße" body:"y" attachment:"report.pdf")`},
		{`folder:INBOX folder:"Lists/go" folder:Lists/* account:work`,
			`(and folder:"INBOX" folder:"Lists/go" folder:"Lists/"* account:"work")`},
		{`flag:seen -flag:Flagged flag:answered flag:draft flag:deleted`,
			`(and flag:1 (not flag:4) flag:2 flag:16 flag:8)`},
		{`tag:$label1 has:attachment mimetype:Image/PNG`, `(and tag:"$label1" has:attachment mimetype:"image/png")`},
		{`size:>1M size:<=10k size:>=2G size:<100 size:>1.5k`, `(and size:>1048576 size:<=10240 size:>=2147483648 size:<100 size:>1536)`},
		{`after:2024-01`, `date:[2024-01-01T00:00:00Z,)`},
		{`before:2024-03-15`, `date:[,2024-03-15T00:00:00Z)`},
		{`date:2024`, `date:[2024-01-01T00:00:00Z,2025-01-01T00:00:00Z)`},
		{`date:2024-02`, `date:[2024-02-01T00:00:00Z,2024-03-01T00:00:00Z)`},
		{`date:2024-02-29`, `date:[2024-02-29T00:00:00Z,2024-03-01T00:00:00Z)`},
		{`date:2024-01..2024-03`, `date:[2024-01-01T00:00:00Z,2024-04-01T00:00:00Z)`},
		{`date:2024-12..`, `date:[2024-12-01T00:00:00Z,)`},
		{`date:..2023`, `date:[,2024-01-01T00:00:00Z)`},
		{`Re: hello`, `(and text:"re:" text:"hello")`},
		{`http://example.org`, `text:"http://example.org"`},
		{`(a)(b)`, `(and text:"a" text:"b")`},
	} {
		q, err := index.ParseQuery(c.in, time.UTC)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got := q.String(); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, `search: at column 1: empty query`},
		{`   `, `search: at column 1: empty query`},
		{`from:alice (invoice`, `search: at column 20: missing ")" (for "(" at column 12)`},
		{`a (b (c)`, `search: at column 9: missing ")" (for "(" at column 3)`},
		{`a b)`, `search: at column 4: unexpected ")"`},
		{`()`, `search: at column 2: empty parentheses`},
		{`"unclosed`, `search: at column 1: missing closing '"'`},
		{`subject:"a b`, `search: at column 9: missing closing '"'`},
		{`"a"b`, `search: at column 4: expected a blank after the closing '"'`},
		{`ab"c"`, `search: at column 3: unexpected '"' inside a word`},
		{`a AND`, `search: at column 6: expected a term after AND at column 3, found end of query`},
		{`a OR OR b`, `search: at column 6: expected a term after OR at column 3, found OR`},
		{`AND a`, `search: at column 1: expected a term, found AND`},
		{`a NOT`, `search: at column 6: expected a term after NOT at column 3, found end of query`},
		{`flag:unread`, `search: at column 6: unknown flag "unread" (seen, flagged, answered, draft, deleted)`},
		{`has:pdf`, `search: at column 5: has: knows only has:attachment, not "pdf"`},
		{`size:1M`, `search: at column 6: size: needs <, <=, > or >= before the size, as in size:>1M`},
		{`size:>lots`, `search: at column 6: size: "lots" is not a size (a number with k, M or G)`},
		{`after:2024-13`, `search: at column 7: after: "2024-13": no month 13`},
		{`date:2023-02-29`, `search: at column 6: date: "2023-02-29": no such day`},
		{`date:24`, `search: at column 6: date: "24" is not a date (YYYY, YYYY-MM or YYYY-MM-DD)`},
		{`date:..`, `search: at column 6: date: a range needs a start or an end`},
		{`Grüße folder:`, `search: at column 14: folder: needs a value`},
		{`from:`, `search: at column 6: from: needs a value`},
		{strings.Repeat("a ", 200) + "b", `search: at column 401: more than 200 terms`},
		{strings.Repeat("(", 51) + "a", `search: at column 51: parentheses and NOTs nested more than 50 deep`},
		{strings.Repeat("NOT -", 25) + "NOT a", `search: at column 126: parentheses and NOTs nested more than 50 deep`},
	} {
		_, err := index.ParseQuery(c.in, time.UTC)
		if err == nil || err.Error() != c.want {
			t.Errorf("%q: error %v\n                 want %s", c.in, err, c.want)
		}
	}
}

// TestQueryBounds: the largest queries the parser accepts run (their
// SQL and FTS5 expressions stay within SQLite's limits).
func TestQueryBounds(t *testing.T) {
	st, err := index.Open(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, qs := range []string{
		strings.Repeat("tag:x ", 200),
		strings.Repeat("(a OR flag:seen) ", 100),
		"a " + strings.Repeat("-b ", 199),
		strings.Repeat("x OR ", 199) + "x",
		strings.Repeat("NOT (flag:seen OR ", 25) + "a" + strings.Repeat(")", 25),
		strings.Repeat("(a OR (flag:seen ", 25) + "b" + strings.Repeat("))", 25),
	} {
		q, err := index.ParseQuery(qs, time.UTC)
		if err != nil {
			t.Fatalf("%.40s...: %v", qs, err)
		}
		err = st.Read(context.Background(), func(tx *index.ReadTx) error {
			_, err := tx.SearchQuery(q, 10, 0)
			return err
		})
		if err != nil {
			t.Errorf("%.40s...: %v", qs, err)
		}
	}
}

// FuzzParseQuery: no input makes the parser panic; an error is one line
// naming a column; a query it accepts means the same in parentheses and
// its negation after NOT, and runs: nothing of the input reaches FTS5 or
// SQL as syntax.
func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{`a b`, `from:x OR (subject:"y z"* -w)`, `NOT a AND b`, `"a""b"`, `size:>1M date:2024-01..2024-03`,
		`folder:INBOX* mimetype:image tag:x has:attachment`, `a NEAR(b c) "x" * ^y {col}:z`, `-(-a)`, `"\`, `"a\"" b*`, `x:"`} {
		f.Add(s)
	}
	st, err := index.Open(filepath.Join(f.TempDir(), "index.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	f.Fuzz(func(t *testing.T, s string) {
		q, err := index.ParseQuery(s, time.UTC)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "search: at column ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("%q: error %q", s, err)
			}
			return
		}
		// Parenthesized, it is the same query; negated, its negation.
		if p, err := index.ParseQuery("("+s+")", time.UTC); err != nil || p.String() != q.String() {
			t.Fatalf("(%s): %v, %v; want %s", s, p, err, q)
		}
		if p, err := index.ParseQuery("NOT ("+s+")", time.UTC); err != nil || p.String() != "(not "+q.String()+")" {
			t.Fatalf("NOT (%s): %v, %v; want (not %s)", s, p, err, q)
		}
		err = st.Read(context.Background(), func(tx *index.ReadTx) error {
			_, err := tx.SearchQuery(q, 10, 0)
			return err
		})
		if err != nil {
			t.Fatalf("%q (%s): %v", s, q, err)
		}
	})
}

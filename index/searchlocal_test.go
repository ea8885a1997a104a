package index_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/maildir"
)

// searchMessages are the messages of the search tests, by name. Internal
// dates are at noon UTC: the same day in every zone within 11 hours of
// UTC (SINCE and friends compare the server zone's days).
var searchMessages = []struct {
	name     string
	raw      string
	lf       bool // stored with LF line ends
	flags    maildir.Flags
	keywords []string
	idate    string
}{
	{"alice", "From: Alice Example <alice@example.org>\nTo: Bob <bob@example.net>\nCc: carol@example.com\n" +
		"Bcc: secret@example.org\nSubject: Quarterly report\nDate: Mon, 02 Jan 2023 23:30:00 -0500\n" +
		"X-Mailer: Mutt/2.0\nMessage-ID: <alice-1@example.org>\n\nThe quarterly figures are attached. Hello world.\n",
		false, maildir.FlagSeen | maildir.FlagFlagged, []string{"$Label1"}, "2023-01-03"},
	{"jurgen", "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jm@example.de>\nTo: alice@example.org\n" +
		"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\nDate: Tue, 03 Jan 2023 08:00:00 +0100\n" +
		"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nWir sehen uns im Büro.\n",
		false, maildir.FlagAnswered, nil, "2023-01-04"},
	{"invoice", "From: bob@example.net\nTo: alice\nSubject: Invoice 2024\nDate: Wed, 04 Jan 2023 10:00:00 +0000\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nplease pay the invoice\n" +
		"--b\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" +
		strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n", 120) + "--b--\n",
		false, maildir.FlagDeleted | maildir.FlagDraft, []string{"Work"}, "2023-01-05"},
	{"nodate", "From: \"Dana\" <dana@example.org>\nSubject: no date here\n\nstored with bare line feeds\n",
		true, maildir.FlagPassed, nil, "2023-01-06"},
	{"list", "From: Eve <eve@example.org>\nTo: undisclosed-recipients:;\nSubject: [go] hello\n" +
		"Date: Thu, 05 Jan 2023 00:30:00 +0900\nList-Id: Go <go.lists.example.org>\n\nA list message.\n",
		false, 0, nil, "2023-01-07"},
}

func searchStore(t *testing.T) *fileStore {
	fs := newFileStore(t)
	for _, m := range searchMessages {
		raw := crlfOf(m.raw)
		if m.lf {
			raw = []byte(m.raw)
		}
		d, err := time.Parse("2006-01-02", m.idate)
		if err != nil {
			t.Fatal(err)
		}
		fs.add(m.name, raw, m.flags, m.keywords, d.Add(12*time.Hour))
	}
	return fs
}

func searchDay(s string) time.Time {
	d, err := time.Parse("2-Jan-2006", s)
	if err != nil {
		panic(err)
	}
	return d
}

func sHeader(k, v string) imap.SearchCriteria {
	return imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: k, Value: v}}}
}

func sFlag(f imap.Flag) imap.SearchCriteria    { return imap.SearchCriteria{Flag: []imap.Flag{f}} }
func sNotFlag(f imap.Flag) imap.SearchCriteria { return imap.SearchCriteria{NotFlag: []imap.Flag{f}} }
func sBody(s string) imap.SearchCriteria       { return imap.SearchCriteria{Body: []string{s}} }
func sText(s string) imap.SearchCriteria       { return imap.SearchCriteria{Text: []string{s}} }
func sNot(c imap.SearchCriteria) imap.SearchCriteria {
	return imap.SearchCriteria{Not: []imap.SearchCriteria{c}}
}
func sOr(a, b imap.SearchCriteria) imap.SearchCriteria {
	return imap.SearchCriteria{Or: [][2]imap.SearchCriteria{{a, b}}}
}

type searchCase struct {
	name string
	c    imap.SearchCriteria
	want string // message names, space-separated, in store order
}

var searchCases = []searchCase{
	{"ALL", imap.SearchCriteria{}, "alice jurgen invoice nodate list"},
	{"UID 2:3", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 3}}}}, "jurgen invoice"},
	{"UID 4:*", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 4, Stop: 0}}}}, "nodate list"},
	{"UID 9:* (* is the highest)", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 9, Stop: 0}}}}, "list"},
	{"UID 3:1", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 3, Stop: 1}}}}, "alice jurgen invoice"},
	{"UID 1,3,5,...,39 (a long set)", imap.SearchCriteria{UID: []imap.UIDSet{oddUIDs(20)}}, "alice invoice list"},
	{"UID 2 UID 2:3 (both)", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 2, Stop: 2}}, {{Start: 2, Stop: 3}}}}, "jurgen"},
	{"FROM alice", sHeader("From", "alice"), "alice"},
	{"FROM ALICE (case)", sHeader("From", "ALICE"), "alice"},
	{"FROM müller (decoded)", sHeader("From", "müller"), "jurgen"},
	{"FROM MÜLLER (Unicode case)", sHeader("From", "MÜLLER"), "jurgen"},
	{"FROM dana", sHeader("From", "Dana"), "nodate"},
	{"TO alice", sHeader("To", "alice"), "jurgen invoice"},
	{"CC carol", sHeader("Cc", "carol@"), "alice"},
	{"BCC secret", sHeader("Bcc", "SECRET"), "alice"},
	{"SUBJECT grüße", sHeader("Subject", "grüße"), "jurgen"},
	{"SUBJECT report", sHeader("Subject", "REPORT"), "alice"},
	{"SUBJECT 100% (no wildcard)", sHeader("Subject", "%"), ""},
	{"HEADER X-Mailer mutt", sHeader("x-mailer", "mutt/2"), "alice"},
	{"HEADER List-Id go.lists", sHeader("List-Id", "go.lists"), "list"},
	{"HEADER List-Id \"\"", sHeader("List-ID", ""), "list"},
	{"HEADER Message-ID alice-1", sHeader("Message-ID", "alice-1@"), "alice"},
	{"HEADER Subject \"\"", sHeader("Subject", ""), "alice jurgen invoice nodate list"},
	{"HEADER Cc \"\"", sHeader("Cc", ""), "alice"},
	{"SINCE 5-Jan-2023", imap.SearchCriteria{Since: searchDay("5-Jan-2023")}, "invoice nodate list"},
	{"BEFORE 4-Jan-2023", imap.SearchCriteria{Before: searchDay("4-Jan-2023")}, "alice"},
	{"ON 4-Jan-2023", imap.SearchCriteria{Since: searchDay("4-Jan-2023"), Before: searchDay("5-Jan-2023")}, "jurgen"},
	{"SENTON 2-Jan-2023 (the Date's own zone)", imap.SearchCriteria{SentSince: searchDay("2-Jan-2023"), SentBefore: searchDay("3-Jan-2023")}, "alice"},
	{"SENTON 5-Jan-2023", imap.SearchCriteria{SentSince: searchDay("5-Jan-2023"), SentBefore: searchDay("6-Jan-2023")}, "list"},
	{"SENTSINCE 4-Jan-2023", imap.SearchCriteria{SentSince: searchDay("4-Jan-2023")}, "invoice list"},
	{"SENTBEFORE 3-Jan-2023", imap.SearchCriteria{SentBefore: searchDay("3-Jan-2023")}, "alice"},
	{"NOT SENTBEFORE 3-Jan-2023", sNot(imap.SearchCriteria{SentBefore: searchDay("3-Jan-2023")}), "jurgen invoice nodate list"},
	{"LARGER 3000", imap.SearchCriteria{Larger: 3000}, "invoice"},
	{"SMALLER 3000", imap.SearchCriteria{Smaller: 3000}, "alice jurgen nodate list"},
	{"SEEN", sFlag(imap.FlagSeen), "alice"},
	{"UNSEEN", sNotFlag(imap.FlagSeen), "jurgen invoice nodate list"},
	{"ANSWERED", sFlag(imap.FlagAnswered), "jurgen"},
	{"DELETED", sFlag(imap.FlagDeleted), "invoice"},
	{"UNDELETED", sNotFlag(imap.FlagDeleted), "alice jurgen nodate list"},
	{"DRAFT", sFlag(imap.FlagDraft), "invoice"},
	{"FLAGGED", sFlag(imap.FlagFlagged), "alice"},
	{"KEYWORD $label1 (case)", sFlag("$label1"), "alice"},
	{"KEYWORD $Forwarded", sFlag(imap.FlagForwarded), "nodate"},
	{"UNKEYWORD Work", sNotFlag("work"), "alice jurgen nodate list"},
	{"KEYWORD Wor (whole keywords)", sFlag("Wor"), ""},
	{"RECENT", sFlag(`\Recent`), ""},
	{"NEW", imap.SearchCriteria{Flag: []imap.Flag{`\Recent`}, NotFlag: []imap.Flag{imap.FlagSeen}}, ""},
	{"OLD", sNotFlag(`\Recent`), "alice jurgen invoice nodate list"},
	{"BODY quarterly", sBody("Quarterly"), "alice"},
	{"BODY \"figures are\" (phrase)", sBody("figures are"), "alice"},
	{"BODY \"are figures\"", sBody("are figures"), ""},
	{"BODY invo (word start)", sBody("invo"), "invoice"},
	{"BODY report (subject only)", sBody("report"), ""},
	{"BODY büro", sBody("BÜRO"), "jurgen"},
	{"BODY line feeds", sBody("line feeds"), "nodate"},
	{"BODY \"\"", sBody(""), "alice jurgen invoice nodate list"},
	{"TEXT report (subject)", sText("report"), "alice"},
	{"TEXT bob@example.net (header)", sText("bob@example.net"), "alice invoice"},
	{"TEXT go.lists (a header only the view has)", sText("go.lists"), "list"},
	{"TEXT hello", sText("hello"), "alice list"},
	{"TEXT x-mailer: mutt (header, case)", sText("x-mailer: MUTT"), "alice"},
	{"TEXT x_mailer (no wildcard)", sText("x_mailer"), ""},
	{"NOT FROM alice", sNot(sHeader("From", "alice")), "jurgen invoice nodate list"},
	{"OR FROM alice FROM bob", sOr(sHeader("From", "alice"), sHeader("From", "bob")), "alice invoice"},
	{"OR (SEEN FLAGGED) NOT (OR DRAFT ANSWERED)",
		sOr(imap.SearchCriteria{Flag: []imap.Flag{imap.FlagSeen, imap.FlagFlagged}}, sNot(sOr(sFlag(imap.FlagDraft), sFlag(imap.FlagAnswered)))),
		"alice nodate list"},
	{"NOT NOT BCC secret", sNot(sNot(sHeader("Bcc", "secret"))), "alice"},
	{"UID 1:4 NOT SEEN SMALLER 3000", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 1, Stop: 4}}},
		NotFlag: []imap.Flag{imap.FlagSeen}, Smaller: 3000}, "jurgen nodate"},
}

// oddUIDs is the set 1,3,5,... of n single UIDs.
func oddUIDs(n int) imap.UIDSet {
	var s imap.UIDSet
	for i := range n {
		u := imap.UID(2*i + 1)
		s = append(s, imap.UIDRange{Start: u, Stop: u})
	}
	return s
}

func (fs *fileStore) search(c *imap.SearchCriteria) (string, error) {
	var uids []uint32
	err := fs.st.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		uids, err = tx.SearchLocal(fs.f.ID, c)
		return err
	})
	if err != nil {
		return "", err
	}
	if !slices.IsSorted(uids) {
		return "", fmt.Errorf("UIDs not ascending: %v", uids)
	}
	var names []string
	for _, u := range uids {
		name := fmt.Sprint(u)
		for n, v := range fs.byName {
			if v == u {
				name = n
			}
		}
		names = append(names, name)
	}
	return strings.Join(names, " "), nil
}

// TestSearchLocal: every search key, against messages whose full-text
// entries and IMAP views are in place.
func TestSearchLocal(t *testing.T) {
	fs := searchStore(t)
	ctx := context.Background()
	if _, err := fs.st.IndexPending(ctx, fs.st.Root(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.st.IndexIMAP(ctx, fs.f.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range searchCases {
		got, err := fs.search(&c.c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
	// Sequence numbers are the caller's to turn into UIDs.
	if _, err := fs.search(&imap.SearchCriteria{SeqNum: []imap.SeqSet{{{Start: 1, Stop: 1}}}}); err == nil {
		t.Error("a search with sequence numbers did not fail")
	}
}

// TestSearchLocalBeforeViews: before the full-text entries and the views
// are made, the keys the row answers are exact, BODY finds nothing yet,
// TEXT finds the header fields the row holds, and the keys that need the
// view (BCC, other HEADER fields) match nothing; the Date's day is taken
// in UTC.
func TestSearchLocalBeforeViews(t *testing.T) {
	fs := searchStore(t)
	for _, c := range []searchCase{
		{"FROM müller", sHeader("From", "müller"), "jurgen"},
		{"SUBJECT report", sHeader("Subject", "report"), "alice"},
		{"SEEN", sFlag(imap.FlagSeen), "alice"},
		{"LARGER 3000", imap.SearchCriteria{Larger: 3000}, "invoice"},
		{"SINCE 5-Jan-2023", imap.SearchCriteria{Since: searchDay("5-Jan-2023")}, "invoice nodate list"},
		{"BCC secret (needs the view)", sHeader("Bcc", "secret"), ""},
		{"HEADER List-Id (needs the view)", sHeader("List-Id", ""), ""},
		{"HEADER Cc \"\" (the row's field)", sHeader("Cc", ""), "alice"},
		{"SENTON 3-Jan-2023 (UTC day without the view)", imap.SearchCriteria{SentSince: searchDay("3-Jan-2023"), SentBefore: searchDay("4-Jan-2023")}, "alice jurgen"},
		{"BODY quarterly (pending)", sBody("quarterly"), ""},
		{"TEXT report (pending: the row's subject)", sText("report"), "alice"},
	} {
		got, err := fs.search(&c.c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// BenchmarkSearchLocal20k: searches of a 20,000-message folder of corpus
// mail (files, full-text entries and IMAP views in place). Run:
//
//	go test -run '^$' -bench BenchmarkSearchLocal20k -benchtime 20x ./index/
func BenchmarkSearchLocal20k(b *testing.B) {
	const n = 20000
	root := b.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	var f *index.Folder
	err = st.Write(ctx, func(tx *index.Tx) error {
		a, err := tx.EnsureAccount("acct")
		if err != nil {
			return err
		}
		rel, err := index.FolderPath("acct", "INBOX")
		if err != nil {
			return err
		}
		f, err = tx.EnsureFolder(a, "INBOX", rel)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	d, err := st.Dir(*f)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := maildir.Open(d.Path); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	var es []maildir.Entry
	flush := func() {
		ms, err := st.FileMessages(f, es, false)
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Write(ctx, func(tx *index.Tx) error { _, err := tx.AddMessages(ms); return err }); err != nil {
			b.Fatal(err)
		}
		es = es[:0]
	}
	i := 0
	err = corpus.Each(11, n, corpus.Options{}, func(m corpus.Message) error {
		i++
		flags, _ := maildir.FlagsFromIMAP(m.Flags)
		name := fmt.Sprintf("1700000000.M%dP1.bench:%s", i, flags.Info())
		if err := writeFileTimes(d.Path+"/cur/"+name, m.Raw, m.Date); err != nil {
			return err
		}
		e, ok := maildir.ParseName(name)
		if !ok {
			return fmt.Errorf("bad name %s", name)
		}
		e.Sub = "cur"
		es = append(es, e)
		if len(es) == 1000 {
			flush()
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if len(es) > 0 {
		flush()
	}
	b.Logf("rows for %d files: %v", n, time.Since(start))
	t0 := time.Now()
	if _, err := st.IndexPending(ctx, root, nil); err != nil {
		b.Fatal(err)
	}
	b.Logf("full text: %v", time.Since(t0))
	size := func() int64 {
		var total int64
		for _, p := range []string{st.Path(), st.Path() + "-wal"} {
			if fi, err := os.Stat(p); err == nil {
				total += fi.Size()
			}
		}
		return total
	}
	before := size()
	t0 = time.Now()
	if k, err := st.IndexIMAP(ctx, f.ID); err != nil || k != n {
		b.Fatalf("IndexIMAP: %d, %v", k, err)
	}
	b.Logf("IMAP views: %v; index %d MB before, %d MB after", time.Since(t0), before>>20, size()>>20)
	for _, c := range []searchCase{
		{"ALL", imap.SearchCriteria{}, ""},
		{"UNSEEN", sNotFlag(imap.FlagSeen), ""},
		{"FROM alice", sHeader("From", "alice"), ""},
		{"FROM müller", sHeader("From", "müller"), ""},
		{"SUBJECT re", sHeader("Subject", "re:"), ""},
		{"BCC x", sHeader("Bcc", "x"), ""},
		{"HEADER List-Id go", sHeader("List-Id", "go"), ""},
		{"SINCE+BEFORE", imap.SearchCriteria{Since: searchDay("1-Mar-2022"), Before: searchDay("1-Apr-2022")}, ""},
		{"SENTSINCE", imap.SearchCriteria{SentSince: searchDay("1-Mar-2022")}, ""},
		{"LARGER 4000", imap.SearchCriteria{Larger: 4000}, ""},
		{"BODY meeting", sBody("meeting"), ""},
		{"TEXT invoice", sText("invoice"), ""},
		{"OR FROM alice NOT SEEN", sOr(sHeader("From", "alice"), sNotFlag(imap.FlagSeen)), ""},
		{"UID 1000 ranges", imap.SearchCriteria{UID: []imap.UIDSet{oddUIDs(1000)}}, ""},
	} {
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			var hits int
			for b.Loop() {
				err := st.Read(ctx, func(tx *index.ReadTx) error {
					uids, err := tx.SearchLocal(f.ID, &c.c)
					hits = len(uids)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(hits), "hits")
		})
	}
}

func writeFileTimes(p string, raw []byte, t time.Time) error {
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		return err
	}
	return os.Chtimes(p, t, t)
}

// TestPrepareSearch: on a fresh store (full text pending, no views),
// PrepareSearch makes each key that needs the full-text entries or the
// views exact, nested ones included.
func TestPrepareSearch(t *testing.T) {
	ctx := context.Background()
	for _, c := range []searchCase{
		{"BODY quarterly", sBody("quarterly"), "alice"},
		{"TEXT go.lists", sText("go.lists"), "list"},
		{"BCC secret", sHeader("Bcc", "secret"), "alice"},
		{"HEADER List-Id \"\"", sHeader("List-Id", ""), "list"},
		{"SENTON 2-Jan-2023", imap.SearchCriteria{SentSince: searchDay("2-Jan-2023"), SentBefore: searchDay("3-Jan-2023")}, "alice"},
		{"NOT NOT BCC secret", sNot(sNot(sHeader("Bcc", "secret"))), "alice"},
		{"OR SEEN BODY invo", sOr(sFlag(imap.FlagSeen), sBody("invo")), "alice invoice"},
	} {
		fs := searchStore(t)
		if err := fs.st.PrepareSearch(ctx, fs.f.ID, &c.c); err != nil {
			t.Fatal(err)
		}
		got, err := fs.search(&c.c)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		} else if got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}
}

// TestIMAPViewOlderIndex: an index made before schema version 9 gets the
// views table when opened, and its messages get their views on first use.
func TestIMAPViewOlderIndex(t *testing.T) {
	fs := searchStore(t)
	root := fs.st.Root()
	fs.st.Close()
	db, err := sql.Open("sqlite", index.DefaultPath(root))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`DROP TABLE imap_views`, `PRAGMA user_version = 8`} {
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
	fs.st = st
	env, _ := fs.view(fs.byName["alice"])
	if env.Subject != "Quarterly report" || len(env.Bcc) != 1 || env.Bcc[0].Mailbox != "secret" {
		t.Errorf("envelope %+v", env)
	}
	c := sHeader("Bcc", "secret")
	if err := st.PrepareSearch(context.Background(), fs.f.ID, &c); err != nil {
		t.Fatal(err)
	}
	if got, err := fs.search(&c); err != nil || got != "alice" {
		t.Errorf("BCC secret: %q, %v", got, err)
	}
}

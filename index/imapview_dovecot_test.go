package index_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
	"github.com/postfach/postfach/maildir"
)

// TestIMAPViewMatchesDovecot: for well-formed corpus mail (stored with LF
// line ends here, appended with CRLF there), ENVELOPE and BODYSTRUCTURE
// are byte for byte what Dovecot answers, in the form go-imap's writer
// gives them.
func TestIMAPViewMatchesDovecot(t *testing.T) {
	d := testenv.StartDovecot(t)
	c, err := net.Dial("tcp", net.JoinHostPort(d.Host, fmt.Sprint(d.IMAPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	br := bufio.NewReader(c)
	// read returns the lines up to the tagged response (or a
	// continuation), a literal written as the quoted string it stands for.
	read := func(tag string) []string {
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading from Dovecot: %v", err)
			}
			l = strings.TrimRight(l, "\r\n")
			for strings.HasSuffix(l, "}") && strings.LastIndexByte(l, '{') >= 0 {
				var size int
				open := strings.LastIndexByte(l, '{')
				if _, err := fmt.Sscanf(l[open:], "{%d}", &size); err != nil {
					break
				}
				lit := make([]byte, size)
				if _, err := io.ReadFull(br, lit); err != nil {
					t.Fatal(err)
				}
				rest, err := br.ReadString('\n')
				if err != nil {
					t.Fatal(err)
				}
				l = l[:open] + fmt.Sprintf("%q", lit) + strings.TrimRight(rest, "\r\n")
			}
			lines = append(lines, l)
			if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "+ ") {
				return lines
			}
		}
	}
	read("*")
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", testenv.DefaultUser.Name, testenv.DefaultUser.Password)
	read("a")
	n := 40
	if testing.Short() {
		n = 15
	}
	msgs := corpus.Generate(5, n, corpus.Options{BigAttachmentEvery: 13, BigAttachmentSize: 20 << 10})
	fs := newFileStore(t)
	for i, m := range msgs {
		tag := fmt.Sprintf("b%d", i)
		fmt.Fprintf(c, "%s APPEND INBOX {%d}\r\n", tag, len(m.Raw))
		read(tag)
		c.Write(m.Raw)
		c.Write([]byte("\r\n"))
		if r := read(tag); !strings.HasPrefix(r[len(r)-1], tag+" OK") {
			t.Fatalf("APPEND: %v", r)
		}
	}
	fmt.Fprintf(c, "c SELECT INBOX\r\n")
	read("c")
	for i, m := range msgs {
		tag := fmt.Sprintf("d%d", i)
		fmt.Fprintf(c, "%s FETCH %d (ENVELOPE BODYSTRUCTURE)\r\n", tag, i+1)
		r := read(tag)
		env, bs := fs.view(fs.add("", lfOf(m.Raw), 0, nil, m.Date))
		want := fmt.Sprintf("* %d FETCH (ENVELOPE %s BODYSTRUCTURE %s)", i+1, wireEnv(env, false), wireBody(bs, false))
		if len(r) != 2 || r[0] != want {
			t.Errorf("message %d:\ndovecot %s\n   mine %s", i, r[0], want)
		}
	}
}

// TestSearchLocalMatchesDovecot: the same corpus mail (flags, keywords
// and internal dates included) in Dovecot and in the store: UID SEARCH
// with each kind of key gives the same UIDs (both number the messages 1,
// 2, ... in the same order). Word keys use whole words: the full-text
// index finds words and word beginnings, Dovecot any substring.
func TestSearchLocalMatchesDovecot(t *testing.T) {
	d := testenv.StartDovecot(t)
	c, err := net.Dial("tcp", net.JoinHostPort(d.Host, fmt.Sprint(d.IMAPPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(120 * time.Second))
	br := bufio.NewReader(c)
	read := func(tag string) []string {
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("reading from Dovecot: %v", err)
			}
			lines = append(lines, strings.TrimRight(l, "\r\n"))
			if strings.HasPrefix(l, tag+" ") || strings.HasPrefix(l, "+ ") {
				return lines
			}
		}
	}
	read("*")
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", testenv.DefaultUser.Name, testenv.DefaultUser.Password)
	read("a")
	n := 150
	if testing.Short() {
		n = 50
	}
	fs := newFileStore(t)
	for i, m := range corpus.Generate(9, n, corpus.Options{}) {
		tag := fmt.Sprintf("b%d", i)
		var fl []string
		for _, f := range m.Flags {
			fl = append(fl, string(f))
		}
		fmt.Fprintf(c, "%s APPEND INBOX (%s) %q {%d}\r\n", tag, strings.Join(fl, " "),
			m.Date.Format("02-Jan-2006 15:04:05 -0700"), len(m.Raw))
		read(tag)
		c.Write(m.Raw)
		c.Write([]byte("\r\n"))
		if r := read(tag); !strings.HasPrefix(r[len(r)-1], tag+" OK") {
			t.Fatalf("APPEND: %v", r)
		}
		flags, kws := maildir.FlagsFromIMAP(m.Flags)
		fs.add("", lfOf(m.Raw), flags, kws, m.Date)
	}
	fmt.Fprintf(c, "c SELECT INBOX\r\n")
	read("c")
	ctx := context.Background()
	if _, err := fs.st.IndexPending(ctx, fs.st.Root(), nil); err != nil {
		t.Fatal(err)
	}
	for i, k := range []struct {
		imap string
		c    imap.SearchCriteria
	}{
		{"FROM alice", sHeader("From", "alice")},
		{"FROM example.de", sHeader("From", "example.de")},
		{"TO postfach", sHeader("To", "postfach")},
		{"CC eve", sHeader("Cc", "eve")},
		{"BCC eve", sHeader("Bcc", "eve")},
		{"SUBJECT re:", sHeader("Subject", "re:")},
		{"SUBJECT weihnachtsfeier", sHeader("Subject", "weihnachtsfeier")},
		{"HEADER List-Id lists.example.org", sHeader("List-Id", "lists.example.org")},
		{"HEADER In-Reply-To corpus", sHeader("In-Reply-To", "corpus")},
		{"HEADER References \"\"", sHeader("References", "")},
		{"SINCE 2-Jan-2022", imap.SearchCriteria{Since: searchDay("2-Jan-2022")}},
		{"BEFORE 2-Jan-2022", imap.SearchCriteria{Before: searchDay("2-Jan-2022")}},
		{"ON 2-Jan-2022", imap.SearchCriteria{Since: searchDay("2-Jan-2022"), Before: searchDay("3-Jan-2022")}},
		{"SENTSINCE 2-Jan-2022", imap.SearchCriteria{SentSince: searchDay("2-Jan-2022")}},
		{"SENTBEFORE 2-Jan-2022", imap.SearchCriteria{SentBefore: searchDay("2-Jan-2022")}},
		{"SENTON 2-Jan-2022", imap.SearchCriteria{SentSince: searchDay("2-Jan-2022"), SentBefore: searchDay("3-Jan-2022")}},
		{"LARGER 3000", imap.SearchCriteria{Larger: 3000}},
		{"SMALLER 2000", imap.SearchCriteria{Smaller: 2000}},
		{"SEEN", sFlag(imap.FlagSeen)},
		{"UNSEEN", sNotFlag(imap.FlagSeen)},
		{"FLAGGED", sFlag(imap.FlagFlagged)},
		{"ANSWERED", sFlag(imap.FlagAnswered)},
		{"KEYWORD $Label1", sFlag("$Label1")},
		{"UNKEYWORD $label1", sNotFlag("$label1")},
		{"BODY coffee", sBody("coffee")},
		{"BODY quarterly", sBody("quarterly")},
		{"TEXT alice", sText("alice")},
		{"TEXT budget", sText("budget")},
		{"NOT FROM alice", sNot(sHeader("From", "alice"))},
		{"OR SEEN FLAGGED", sOr(sFlag(imap.FlagSeen), sFlag(imap.FlagFlagged))},
		{"UID 3:7 NOT SEEN", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 3, Stop: 7}}}, NotFlag: []imap.Flag{imap.FlagSeen}}},
		{"UID 40:*", imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 40, Stop: 0}}}}},
	} {
		tag := fmt.Sprintf("s%d", i)
		fmt.Fprintf(c, "%s UID SEARCH %s\r\n", tag, k.imap)
		r := read(tag)
		want := strings.TrimSpace(strings.TrimPrefix(r[0], "* SEARCH"))
		if err := fs.st.PrepareSearch(ctx, fs.f.ID, &k.c); err != nil {
			t.Fatal(err)
		}
		var uids []uint32
		err := fs.st.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			uids, err = tx.SearchLocal(fs.f.ID, &k.c)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", k.imap, err)
		}
		got := strings.Trim(fmt.Sprint(uids), "[]")
		if got != want {
			t.Errorf("SEARCH %s:\ndovecot %s\n   ours %s", k.imap, want, got)
		}
	}
}

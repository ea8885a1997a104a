package index_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// TestSearchQueryRandom compares the results of random queries (every
// operator and field, nested) with a brute-force scan of the same
// messages: random messages with accented words in headers and bodies
// (plain, quoted-printable, base64, HTML alternatives), attachments with
// names and types, dates with and without a Date header, flags,
// keywords, folders of two accounts. Each query is rendered as text and
// parsed, so the parser is checked on the way; results must be equal in
// content and order (newest first), also paged with limit and offset.
func TestSearchQueryRandom(t *testing.T) {
	nmsg, nq := 160, 1500
	if testing.Short() {
		nmsg, nq = 70, 400
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("POSTFACH_SEARCH_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	st, msgs := randomSearchStore(t, rng, nmsg)
	zone := time.FixedZone("X", 2*3600)
	ctx := context.Background()
	defer index.SetSearchManyMatches(4000)()
	for i := range nq {
		qs, eval := randomQuery(rng, 3)
		q, err := index.ParseQuery(qs, zone)
		if err != nil {
			t.Fatalf("query %q: %v", qs, err)
		}
		var want []index.MessageID
		for _, m := range msgs {
			if eval(m, zone) {
				want = append(want, m.id)
			}
		}
		sortNewest(msgs, want)
		// Half the queries with the plan for words many messages have
		// (a scan by date), also when few have them here.
		index.SetSearchManyMatches(1 + i%2*4000)
		var got []index.MessageID
		err = st.Read(ctx, func(tx *index.ReadTx) error {
			limit, offset := 1000, 0
			if i%5 == 0 {
				limit, offset = 1+rng.IntN(5), rng.IntN(4)
				if offset < len(want) {
					want = want[offset:min(len(want), offset+limit)]
				} else {
					want = nil
				}
			}
			hits, err := tx.SearchQuery(q, limit, offset)
			for _, h := range hits {
				got = append(got, h.ID)
			}
			return err
		})
		if err != nil {
			t.Fatalf("query %q: %v", qs, err)
		}
		if !slices.Equal(got, want) {
			for _, id := range append(slices.Clone(got), want...) {
				for _, m := range msgs {
					if m.id == id {
						t.Logf("%d: %+v", id, *m)
					}
				}
			}
			t.Fatalf("query %q (seed %d):\n got %v\nwant %v", qs, seed, got, want)
		}
	}
}

// Words of the random messages: accented ones, ones sharing prefixes.
var randomWords = []string{
	"Grüße", "grusse", "café", "CAFE", "naïve", "smørrebrød", "Łódź", "straße", "über", "uber",
	"résumé", "apple", "apples", "applesauce", "banana", "cherry", "Zürich", "garçon", "æble",
	"invoice", "report", "2024", "q3", "meeting", "notes", "x",
}

var randomFolds = map[rune]string{
	'ü': "u", 'Ü': "u", 'é': "e", 'É': "e", 'ï': "i", 'ø': "o", 'Ø': "o", 'ł': "l", 'Ł': "l",
	'ó': "o", 'ź': "z", 'ß': "ss", 'ẞ': "ss", 'ç': "c", 'æ': "ae", 'Æ': "ae",
}

// tokens splits s as the full-text index does: runs of letters and
// digits, folded to lower case without accents.
func tokens(s string) []string {
	var b strings.Builder
	for _, r := range s {
		r = unicode.ToLower(r)
		if f, ok := randomFolds[r]; ok {
			b.WriteString(f)
		} else {
			b.WriteRune(r)
		}
	}
	return strings.FieldsFunc(b.String(), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

type randomMsg struct {
	id                    index.MessageID
	account, folder       string
	subject, from, to, cc []string // tokens of the stored fields
	body                  []string // tokens of the text
	attNames              []string // tokens of the attachment names
	attachment            bool
	types                 []string
	date                  int64
	size                  int64
	flags                 maildir.Flags
	keywords              []string
}

func sortNewest(msgs []*randomMsg, ids []index.MessageID) {
	byID := map[index.MessageID]*randomMsg{}
	for _, m := range msgs {
		byID[m.id] = m
	}
	slices.SortFunc(ids, func(a, b index.MessageID) int {
		da, db := byID[a].date, byID[b].date
		if da != db {
			if da > db {
				return -1
			}
			return 1
		}
		return int(b - a)
	})
}

func randomText(rng *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = randomWords[rng.IntN(len(randomWords))]
		if rng.IntN(8) == 0 {
			w[i] += [...]string{",", ".", "!", "-"}[rng.IntN(4)]
		}
	}
	return strings.Join(w, " ")
}

type randomFolder struct {
	acct string
	f    *index.Folder
	d    *maildir.Dir
}

// randomFolders makes the folders of two accounts.
func randomFolders(t *testing.T, st *index.Store) []randomFolder {
	ctx := context.Background()
	var folders []randomFolder
	err := st.Write(ctx, func(tx *index.Tx) error {
		for _, af := range [][2]string{{"home", "INBOX"}, {"home", "Work"}, {"home", "Lists/go"}, {"work", "INBOX"}, {"work", "Lists"}} {
			a, err := tx.EnsureAccount(af[0])
			if err != nil {
				return err
			}
			rel, err := index.FolderPath(af[0], af[1])
			if err != nil {
				return err
			}
			f, err := tx.EnsureFolder(a, af[1], rel)
			if err != nil {
				return err
			}
			folders = append(folders, randomFolder{acct: af[0], f: f})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range folders {
		d, err := st.Dir(*folders[i].f)
		if err != nil {
			t.Fatal(err)
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(d.Path, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		folders[i].d = d
	}
	return folders
}

// randomSearchStore writes n random messages into folders of two
// accounts, indexes them and returns what the brute-force scan needs.
func randomSearchStore(t *testing.T, rng *rand.Rand, n int) (*index.Store, []*randomMsg) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	folders := randomFolders(t, st)
	var msgs []*randomMsg
	for k := range n {
		fo := folders[rng.IntN(len(folders))]
		m := &randomMsg{account: fo.acct, folder: fo.f.Name}
		raw, kws, idate := randomMessage(rng, k, m)
		key := fmt.Sprintf("1700000000.M%dP1.test", k)
		file := key + ":" + m.flags.Info()
		p := filepath.Join(fo.d.Path, "cur", file)
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, idate, idate); err != nil {
			t.Fatal(err)
		}
		e, err := fo.d.Find(key, file)
		if err != nil {
			t.Fatal(err)
		}
		id, err := st.IndexFile(ctx, index.Found{Folder: fo.f, Entry: e})
		if err != nil {
			t.Fatal(err)
		}
		err = st.Write(ctx, func(tx *index.Tx) error {
			if len(kws) > 0 {
				if err := tx.SetFlags(id, fo.f.ID, m.flags, kws); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		m.id = id
		msgs = append(msgs, m)
	}
	if _, err := st.IndexPending(ctx, root, nil); err != nil {
		t.Fatal(err)
	}
	// The header fields, dates, sizes, flags and keywords as stored.
	byID := map[index.MessageID]*randomMsg{}
	for _, m := range msgs {
		byID[m.id] = m
	}
	err = st.Read(ctx, func(tx *index.ReadTx) error {
		for _, fo := range folders {
			rows, err := tx.Messages(fo.f.ID)
			if err != nil {
				return err
			}
			for _, r := range rows {
				m := byID[r.ID]
				m.subject, m.from, m.to, m.cc = tokens(r.Header.Subject), tokens(r.Header.From), tokens(r.Header.To), tokens(r.Header.Cc)
				m.date = r.InternalDate.Unix()
				if !r.Header.Date.IsZero() {
					m.date = r.Header.Date.Unix()
				}
				m.size, m.flags, m.keywords = r.Size, r.Flags, r.Keywords
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, msgs
}

// randomMessage fills in m (its text, attachments, types, flags) and
// returns the message, its keywords and internal date.
func randomMessage(rng *rand.Rand, k int, m *randomMsg) (raw []byte, kws []string, idate time.Time) {
	var h strings.Builder
	fromName := randomText(rng, 1+rng.IntN(2))
	fmt.Fprintf(&h, "From: %s <%s@example.org>\n", mime.QEncoding.Encode("utf-8", fromName), tokens(randomText(rng, 1))[0])
	fmt.Fprintf(&h, "To: %s <to%d@example.net>\n", mime.QEncoding.Encode("utf-8", randomText(rng, 1)), rng.IntN(4))
	if rng.IntN(2) == 0 {
		fmt.Fprintf(&h, "Cc: cc%d@example.com\n", rng.IntN(3))
	}
	subject := randomText(rng, 1+rng.IntN(4))
	fmt.Fprintf(&h, "Subject: %s\n", mime.QEncoding.Encode("utf-8", subject))
	idate = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.Int64N(4*365*24)) * time.Hour)
	if rng.IntN(6) != 0 {
		zone := time.FixedZone("", (rng.IntN(25)-12)*3600)
		d := time.Date(2022, 1, 1, 0, 0, 0, 0, zone).Add(time.Duration(rng.Int64N(4*365*24*60)) * time.Minute)
		if rng.IntN(10) == 0 { // the same day as another, across a day boundary
			d = time.Date(2024, 2, 29, 23, 30, 0, 0, zone)
		}
		fmt.Fprintf(&h, "Date: %s\n", d.Format(time.RFC1123Z))
	}
	fmt.Fprintf(&h, "Message-ID: <m%d@example.org>\nMIME-Version: 1.0\n", k)
	text := randomText(rng, rng.IntN(25))
	enc, encoded := randomEncoding(rng, text)
	var body string
	var bodyText string
	switch rng.IntN(4) {
	case 0:
		body = "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: " + enc + "\n\n" + encoded
		bodyText = text
		m.types = []string{"text/plain"}
	case 1:
		henc, hencoded := randomEncoding(rng, "<p>"+strings.ReplaceAll(text, " ", " <b>x</b> ")+"</p>")
		body = "Content-Type: multipart/alternative; boundary=\"alt\"\n\n--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: " + enc + "\n\n" + encoded +
			"\n--alt\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: " + henc + "\n\n" + hencoded + "\n--alt--\n"
		bodyText = text + " " + strings.ReplaceAll(text, " ", " x ")
		m.types = []string{"text/plain", "text/html"}
	default:
		var b strings.Builder
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"mix\"\n\n--mix\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: %s\n\n%s\n", enc, encoded)
		m.types = []string{"text/plain"}
		for range 1 + rng.IntN(2) {
			typ := [...]string{"application/pdf", "image/png", "image/jpeg", "text/csv", "application/zip"}[rng.IntN(5)]
			name := strings.Join(tokens(randomText(rng, 1+rng.IntN(2))), "_") + "." + typ[strings.IndexByte(typ, '/')+1:]
			if rng.IntN(3) == 0 {
				name = randomText(rng, 1) + " " + name // (non-ASCII: RFC 2047 below)
			}
			disp := "attachment"
			if rng.IntN(4) == 0 {
				disp = "inline"
			}
			fmt.Fprintf(&b, "--mix\nContent-Type: %s; name=\"%s\"\nContent-Disposition: %s; filename=\"%s\"\nContent-Transfer-Encoding: base64\n\n%s\n",
				typ, mime.QEncoding.Encode("utf-8", name), disp, mime.QEncoding.Encode("utf-8", name),
				base64.StdEncoding.EncodeToString([]byte("secretattachmentword "+randomText(rng, 3))))
			m.attachment = true
			m.types = append(m.types, typ)
			m.attNames = append(m.attNames, tokens(name)...)
		}
		b.WriteString("--mix--\n")
		body = b.String()
		bodyText = text
	}
	m.body = tokens(bodyText)
	raw = []byte(h.String() + body)
	m.flags = maildir.Flags(rng.IntN(64))
	for _, kw := range []string{"work", "Urgent", "$label1"} {
		if rng.IntN(3) == 0 {
			kws = append(kws, kw)
		}
	}
	return raw, kws, idate
}

func randomEncoding(rng *rand.Rand, text string) (string, string) {
	switch rng.IntN(3) {
	case 0:
		var b strings.Builder
		w := quotedprintable.NewWriter(&b)
		w.Write([]byte(text))
		w.Close()
		return "quoted-printable", b.String()
	case 1:
		return "base64", base64.StdEncoding.EncodeToString([]byte(text))
	}
	return "8bit", text
}

type evalFn func(m *randomMsg, zone *time.Location) bool

// randomQuery returns a random query's text and its meaning.
func randomQuery(rng *rand.Rand, depth int) (string, evalFn) {
	if depth > 0 && rng.IntN(3) == 0 {
		switch rng.IntN(4) {
		case 0, 1:
			n := 2 + rng.IntN(2)
			var parts []string
			var fns []evalFn
			for range n {
				s, f := randomQuery(rng, depth-1)
				parts, fns = append(parts, "("+s+")"), append(fns, f)
			}
			op := [...]string{" ", " AND ", " OR "}[rng.IntN(3)]
			or := op == " OR "
			return strings.Join(parts, op), func(m *randomMsg, z *time.Location) bool {
				for _, f := range fns {
					if f(m, z) == or {
						return or
					}
				}
				return !or
			}
		default:
			s, f := randomQuery(rng, depth-1)
			neg := [...]string{"NOT ", "-"}[rng.IntN(2)]
			return neg + "(" + s + ")", func(m *randomMsg, z *time.Location) bool { return !f(m, z) }
		}
	}
	return randomTerm(rng)
}

func randomWordForm(rng *rand.Rand) string {
	w := randomWords[rng.IntN(len(randomWords))]
	switch rng.IntN(4) {
	case 0:
		return strings.ToUpper(w)
	case 1:
		return strings.Join(tokens(w), "")
	}
	return w
}

func randomTerm(rng *rand.Rand) (string, evalFn) {
	switch k := rng.IntN(16); k {
	case 0, 1, 2, 3, 4, 5:
		return randomTextTerm(rng)
	case 6:
		f := [...]string{"INBOX", "inbox", "Work", "Lists/go", "Lists", "Lists*", "Nope"}[rng.IntN(7)]
		return "folder:" + f, func(m *randomMsg, _ *time.Location) bool {
			if p, ok := strings.CutSuffix(f, "*"); ok {
				return strings.HasPrefix(m.folder, p)
			}
			if strings.EqualFold(f, "INBOX") {
				return strings.EqualFold(m.folder, f)
			}
			return m.folder == f
		}
	case 7:
		a := [...]string{"home", "work"}[rng.IntN(2)]
		return "account:" + a, func(m *randomMsg, _ *time.Location) bool { return m.account == a }
	case 8:
		names := []string{"seen", "answered", "flagged", "deleted", "draft"}
		bits := []maildir.Flags{maildir.FlagSeen, maildir.FlagAnswered, maildir.FlagFlagged, maildir.FlagDeleted, maildir.FlagDraft}
		i := rng.IntN(len(names))
		return "flag:" + names[i], func(m *randomMsg, _ *time.Location) bool { return m.flags&bits[i] != 0 }
	case 9:
		kw := [...]string{"work", "WORK", "urgent", "$label1", "none"}[rng.IntN(5)]
		return "tag:" + kw, func(m *randomMsg, _ *time.Location) bool {
			return slices.ContainsFunc(m.keywords, func(k string) bool { return strings.EqualFold(k, kw) })
		}
	case 10:
		return "has:attachment", func(m *randomMsg, _ *time.Location) bool { return m.attachment }
	case 11:
		typ := [...]string{"image", "image/png", "application/pdf", "text/html", "text/plain", "image/*", "text/csv"}[rng.IntN(7)]
		return "mimetype:" + typ, func(m *randomMsg, _ *time.Location) bool {
			base, _ := strings.CutSuffix(typ, "/*")
			for _, t := range m.types {
				if t == base || !strings.Contains(base, "/") && strings.HasPrefix(t, base+"/") {
					return true
				}
			}
			return false
		}
	case 12, 13:
		return randomDate(rng)
	default:
		ops := []string{"<", "<=", ">", ">="}
		op := ops[rng.IntN(4)]
		n := int64(rng.IntN(3000))
		unit := ""
		if rng.IntN(3) == 0 {
			n, unit = n/1024+rng.Int64N(2), "k"
		}
		bytes := n
		if unit == "k" {
			bytes = n * 1024
		}
		return fmt.Sprintf("size:%s%d%s", op, n, unit), func(m *randomMsg, _ *time.Location) bool {
			switch op {
			case "<":
				return m.size < bytes
			case "<=":
				return m.size <= bytes
			case ">":
				return m.size > bytes
			}
			return m.size >= bytes
		}
	}
}

// randomTextTerm is a text term: a word, phrase, prefix or address part,
// in any field.
func randomTextTerm(rng *rand.Rand) (string, evalFn) {
	fields := []string{"", "", "", "from", "to", "cc", "subject", "body", "attachment"}
	field := fields[rng.IntN(len(fields))]
	var text string
	prefix := false
	switch rng.IntN(5) {
	case 0: // a phrase
		text = randomWordForm(rng) + " " + randomWordForm(rng)
	case 1: // a prefix
		w := []rune(randomWordForm(rng))
		text = string(w[:1+rng.IntN(len(w))])
		prefix = true
	case 2: // an address part
		text = [...]string{"example.org", "to1", "cc2@example.com", "x!"}[rng.IntN(4)]
	default:
		text = randomWordForm(rng)
	}
	qtext := text
	if strings.Contains(text, " ") || rng.IntN(4) == 0 {
		qtext = `"` + text + `"`
	}
	if prefix {
		qtext += "*"
	}
	if field != "" {
		qtext = field + ":" + qtext
	}
	want := tokens(text)
	return qtext, func(m *randomMsg, _ *time.Location) bool {
		var cols [][]string
		switch field {
		case "":
			cols = [][]string{m.subject, m.from, m.to, m.cc, m.body}
		case "from":
			cols = [][]string{m.from}
		case "to":
			cols = [][]string{m.to}
		case "cc":
			cols = [][]string{m.cc}
		case "subject":
			cols = [][]string{m.subject}
		case "body":
			cols = [][]string{m.body}
		case "attachment":
			cols = [][]string{m.attNames}
		}
		for _, c := range cols {
			if hasPhrase(c, want, prefix) {
				return true
			}
		}
		return false
	}
}

// randomDate is a before:, after: or date: term.
func randomDate(rng *rand.Rand) (string, evalFn) {
	type span struct {
		s      string
		lo, hi func(*time.Location) int64
	}
	mk := func() span {
		y, mo, d := 2022+rng.IntN(4), 1+rng.IntN(12), 1+rng.IntN(28)
		if rng.IntN(5) == 0 {
			mo, d = 2, 29
			y = 2024
		}
		switch rng.IntN(3) {
		case 0:
			return span{fmt.Sprintf("%d", y),
				func(z *time.Location) int64 { return time.Date(y, 1, 1, 0, 0, 0, 0, z).Unix() },
				func(z *time.Location) int64 { return time.Date(y+1, 1, 1, 0, 0, 0, 0, z).Unix() }}
		case 1:
			return span{fmt.Sprintf("%d-%02d", y, mo),
				func(z *time.Location) int64 { return time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, z).Unix() },
				func(z *time.Location) int64 { return time.Date(y, time.Month(mo)+1, 1, 0, 0, 0, 0, z).Unix() }}
		}
		return span{fmt.Sprintf("%d-%02d-%02d", y, mo, d),
			func(z *time.Location) int64 { return time.Date(y, time.Month(mo), d, 0, 0, 0, 0, z).Unix() },
			func(z *time.Location) int64 { return time.Date(y, time.Month(mo), d+1, 0, 0, 0, 0, z).Unix() }}
	}
	a, b := mk(), mk()
	switch rng.IntN(6) {
	case 0:
		return "before:" + a.s, func(m *randomMsg, z *time.Location) bool { return m.date < a.lo(z) }
	case 1:
		return "after:" + a.s, func(m *randomMsg, z *time.Location) bool { return m.date >= a.lo(z) }
	case 2:
		return "date:" + a.s, func(m *randomMsg, z *time.Location) bool { return m.date >= a.lo(z) && m.date < a.hi(z) }
	case 3:
		return "date:" + a.s + ".." + b.s, func(m *randomMsg, z *time.Location) bool { return m.date >= a.lo(z) && m.date < b.hi(z) }
	case 4:
		return "date:" + a.s + "..", func(m *randomMsg, z *time.Location) bool { return m.date >= a.lo(z) }
	}
	return "date:.." + a.s, func(m *randomMsg, z *time.Location) bool { return m.date < a.hi(z) }
}

// hasPhrase reports whether want appears in col as consecutive tokens,
// the last as a prefix when prefix. An empty want matches nothing.
func hasPhrase(col, want []string, prefix bool) bool {
	if len(want) == 0 {
		return false
	}
	for i := 0; i+len(want) <= len(col); i++ {
		ok := true
		for j, w := range want {
			c := col[i+j]
			if j == len(want)-1 && prefix {
				ok = strings.HasPrefix(c, w)
			} else {
				ok = c == w
			}
			if !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

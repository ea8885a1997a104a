package corpus

import (
	"bytes"
	"fmt"
	"html"
	"math/rand/v2"
	"mime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// The natural-language corpus (Options.Natural): mail as a person's
// archive holds it, for search benchmarks. Bodies are sentences and
// paragraphs of words drawn by a Zipf distribution over tens of thousands
// of dictionary words (vocab.go), English or (about a quarter of the
// threads) German with its umlauts and ß; greetings, stock phrases
// ("looking forward to"), signatures, quoted text in replies. Subjects are
// words or templates, kept in a thread ("Re: "). Senders are 300 people
// (people.go), a few writing most of the mail, and some machines; Cc on
// about a fifth. Dates ascend with i, about 50 minutes apart from
// 2019-01-02, so 50,000 messages span almost five years. About 7% carry
// one to three attachments with file names and MIME types (PDF, images,
// office documents, text), most a few KB, a few hundred KB. Folders:
// Options.Folders, default NaturalFolders; "Sent" holds mail from Me,
// "Lists/..." mail with a List-Id, "Entwürfe" drafts.

// NaturalFolders is the default folder list of a natural-language corpus.
var NaturalFolders = []string{"INBOX", "Archive", "Sent", "Lists/Go", "Lists/Debian", "Projekte/Umzug", "Entwürfe"}

// naturalEpoch is the Date of message 0 of a natural corpus; message i is
// about i*naturalStep later.
var naturalEpoch = time.Date(2019, 1, 2, 7, 0, 0, 0, time.UTC)

const naturalStep = 50 * time.Minute

// NaturalDate is about when message i of a natural corpus was sent (its
// Date lies within naturalStep after it): for choosing date ranges.
func NaturalDate(i int) time.Time { return naturalEpoch.Add(time.Duration(i) * naturalStep) }

// Salts of the random streams of a natural corpus, apart from the default
// corpus's (newRand) and from each other.
const (
	saltMessage = 0x6e61747572616c00 + iota
	saltThread
	saltRoot
)

func streamOf(seed int64, i int, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed)^salt, uint64(i)))
}

// parentOf is the message i replies to, or -1: about a quarter are
// replies, to one of the 60 messages before.
func parentOf(seed int64, i int) int {
	if i == 0 {
		return -1
	}
	r := streamOf(seed, i, saltThread)
	if r.IntN(100) >= 25 {
		return -1
	}
	return i - 1 - r.IntN(min(i, 60))
}

// thread is what the messages of one thread share: its first message's
// subject, correspondent and language.
type thread struct {
	root    int
	subject string
	peer    Person
	german  bool
}

func (g *gen) threadOf(i int) thread {
	root := i
	for p := parentOf(g.seed, root); p >= 0; p = parentOf(g.seed, root) {
		root = p
	}
	v := g.opts.Natural
	r := streamOf(g.seed, root, saltRoot)
	t := thread{root: root, peer: drawCorrespondent(r)}
	t.german = t.peer.German != (r.IntN(100) < 10) // a tenth the other way
	if r.IntN(100) < 6 {
		a := automated[r.IntN(len(automated))]
		t.peer, t.german = a.from, a.german
		t.subject = fmt.Sprintf(a.subject, 1000+r.IntN(900000))
		return t
	}
	l := &v.english
	if t.german {
		l = &v.german
	}
	switch n := r.IntN(100); {
	case n < 8:
		if t.german {
			t.subject = fmt.Sprintf("Termin am %d.%d. wegen %s", 1+r.IntN(28), 1+r.IntN(12), contentWord(r, l))
		} else {
			t.subject = fmt.Sprintf("Meeting on %s about the %s", pick(r, weekdays), contentWord(r, l))
		}
	case n < 14:
		if t.german {
			t.subject = fmt.Sprintf("Rechnung %d/%d", 100+r.IntN(900), 2019+r.IntN(6))
		} else {
			t.subject = fmt.Sprintf("Invoice %d for %s", 10000+r.IntN(90000), contentWord(r, l))
		}
	case n < 20:
		if t.german {
			t.subject = "Frage zu " + contentWord(r, l)
		} else {
			t.subject = "Question about " + contentWord(r, l)
		}
	default:
		w := make([]string, 2+r.IntN(6))
		for j := range w {
			w[j] = contentWord(r, l)
		}
		t.subject = capitalizeRune(strings.Join(w, " "))
	}
	return t
}

// contentWord draws a word by the Zipf law, skipping the 40 most frequent
// (function words make poor subjects).
func contentWord(r *rand.Rand, l *lang) string {
	for {
		u := r.Float64()
		if k := l.rankOf(u); k >= 40 {
			return l.words[k]
		}
	}
}

var weekdays = strings.Fields("Monday Tuesday Wednesday Thursday Friday")

func (g *gen) natural() Message {
	r := streamOf(g.seed, g.i, saltMessage)
	folders := g.opts.Folders
	if len(folders) == 0 {
		folders = NaturalFolders
	}
	folder := folders[0]
	if len(folders) > 1 && r.IntN(100) >= 40 {
		folder = folders[1+r.IntN(len(folders)-1)]
	}
	t := g.threadOf(g.i)
	from, to := t.peer, Me
	if r.IntN(100) < 30 && g.i != t.root {
		from = drawCorrespondent(r) // someone else joins the thread
	}
	drafts := folder == "Entwürfe" || strings.HasSuffix(folder, "/Drafts")
	sent := drafts || folder == "Sent" || strings.HasSuffix(folder, "/Sent")
	if sent {
		from, to = Me, t.peer
	}
	toField := to.Address()
	var listID string
	if name, ok := strings.CutPrefix(folder, "Lists/"); ok {
		list := strings.ToLower(asciiOnly(name))
		toField = list + "-users@lists.example.org"
		listID = fmt.Sprintf("List-Id: %s users <%s-users.lists.example.org>", name, list)
	}

	date := NaturalDate(g.i).Add(time.Duration(r.IntN(int(naturalStep/time.Second))) * time.Second)
	zone := zones[r.IntN(len(zones))]
	if from.German || t.german {
		zone = zones[1+r.IntN(2)] // CET, CEST
	}
	internal := date.Add(time.Duration(1+r.IntN(300)) * time.Second).UTC()

	var flags []imap.Flag
	switch {
	case drafts:
		flags = append(flags, imap.FlagDraft, imap.FlagSeen)
	case sent:
		flags = append(flags, imap.FlagSeen)
	default:
		if r.IntN(100) < 12 {
			flags = append(flags, imap.FlagAnswered)
		}
		if r.IntN(100) < 4 {
			flags = append(flags, imap.FlagFlagged)
		}
		if r.IntN(100) < 85 {
			flags = append(flags, imap.FlagSeen)
		}
		if r.IntN(100) < 2 {
			flags = append(flags, "$Label1")
		}
	}

	id := naturalID(g.seed, g.i)
	h := []string{"Date: " + date.In(zone).Format(time.RFC1123Z), fold("From: " + from.Address()), fold("To: " + toField)}
	if r.IntN(100) < 20 {
		cc := []string{drawCorrespondent(r).Address()}
		if r.IntN(3) == 0 {
			cc = append(cc, drawCorrespondent(r).Address())
		}
		h = append(h, fold("Cc: "+strings.Join(cc, ", ")))
	}
	subject := t.subject
	parent := parentOf(g.seed, g.i)
	if parent >= 0 {
		prefix := "Re: "
		if t.german && r.IntN(2) == 0 {
			prefix = "AW: "
		}
		subject = prefix + subject
		h = append(h, "In-Reply-To: <"+naturalID(g.seed, parent)+">",
			"References: <"+naturalID(g.seed, t.root)+"> <"+naturalID(g.seed, parent)+">")
	} else if r.IntN(100) < 3 {
		subject = "Fwd: " + subject
	}
	h = append(h, fold("Subject: "+headerText(subject)), "Message-ID: <"+id+">")
	if listID != "" {
		h = append(h, listID)
	}
	h = append(h, "MIME-Version: 1.0")

	greet := to
	if listID != "" {
		greet = Person{Name: "all"}
	}
	text := g.naturalText(r, t, from, greet, parent >= 0)
	body := textPart(r, text)
	if r.IntN(100) < 20 {
		body = g.multipart("alternative", body, htmlPart(text))
	}
	if r.IntN(100) < 7 {
		parts := []part{body}
		for range 1 + r.IntN(3)*r.IntN(2) {
			parts = append(parts, g.namedAttachment(r, t.german, date))
		}
		body = g.multipart("mixed", parts...)
	}
	if every := g.opts.BigAttachmentEvery; every > 0 && (g.i+1)%every == 0 {
		size := g.opts.BigAttachmentSize
		if size <= 0 {
			size = DefaultBigAttachmentSize
		}
		body = g.multipart("mixed", body, g.attachment(size))
	}
	var raw bytes.Buffer
	for _, l := range h {
		raw.WriteString(l)
		raw.WriteString("\r\n")
	}
	raw.Write(body.bytes())
	return Message{Folder: folder, Flags: flags, Date: internal, MessageID: id, Raw: raw.Bytes()}
}

func naturalID(seed int64, i int) string {
	return fmt.Sprintf("%016x.%d.n@corpus.postfach.test", uint64(seed), i)
}

// naturalText is the body's text, LF line ends, wrapped at 72 columns.
func (g *gen) naturalText(r *rand.Rand, t thread, from, to Person, reply bool) string {
	v := g.opts.Natural
	l, german := &v.english, t.german
	if german {
		l = &v.german
	}
	var b strings.Builder
	first := func(p Person) string { n, _, _ := strings.Cut(p.Name, " "); return n }
	if german {
		b.WriteString(pick(r, []string{"Hallo ", "Liebe(r) ", "Moin ", "Guten Tag "}) + first(to) + ",\n\n")
	} else {
		b.WriteString(pick(r, []string{"Hi ", "Hello ", "Dear ", "Hey "}) + first(to) + ",\n\n")
	}
	for p := range 1 + r.IntN(5) {
		if p > 0 {
			b.WriteString("\n")
		}
		wrapLF(&b, "", paragraph(r, l, german))
	}
	if german {
		b.WriteString("\n" + pick(r, []string{"Viele Grüße", "Beste Grüße", "Liebe Grüße", "Mit freundlichen Grüßen", "Danke und Gruß"}) + "\n" + first(from) + "\n")
	} else {
		b.WriteString("\n" + pick(r, []string{"Best regards,", "Thanks,", "Cheers,", "Kind regards,", "Thanks in advance,"}) + "\n" + first(from) + "\n")
	}
	if reply {
		b.WriteString("\n")
		if german {
			fmt.Fprintf(&b, "Am %s schrieb %s:\n", NaturalDate(t.root).Format("02.01.2006 15:04"), t.peer.Name)
		} else {
			fmt.Fprintf(&b, "On %s, %s wrote:\n", NaturalDate(t.root).Format("Mon, 2 Jan 2006 at 15:04"), t.peer.Name)
		}
		for p := range 1 + r.IntN(2) {
			if p > 0 {
				b.WriteString(">\n")
			}
			wrapLF(&b, "> ", paragraph(r, l, german))
		}
	}
	return b.String()
}

// paragraph is 1-5 sentences of 4-18 Zipf-drawn words, sometimes a stock
// phrase among them.
func paragraph(r *rand.Rand, l *lang, german bool) string {
	var b strings.Builder
	for s := range 1 + r.IntN(5) {
		if s > 0 {
			b.WriteByte(' ')
		}
		if r.IntN(100) < 12 {
			if german {
				b.WriteString(pick(r, germanPhrases))
			} else {
				b.WriteString(pick(r, englishPhrases))
			}
			continue
		}
		n := 4 + r.IntN(15)
		for j := range n {
			w := l.word(r)
			if j == 0 {
				w = capitalizeRune(w)
			} else {
				b.WriteByte(' ')
			}
			b.WriteString(w)
			if j < n-1 && r.IntN(100) < 6 {
				b.WriteByte(',')
			}
		}
		b.WriteByte(pick(r, terminators))
	}
	return b.String()
}

var englishPhrases = []string{
	"Looking forward to hearing from you.",
	"Let me know if you have any questions.",
	"Please see the attached file.",
	"As discussed on the phone, here are the details.",
	"Sorry for the late reply.",
	"Thanks for the quick response!",
	"Could you please take a look?",
	"I will be out of the office next week.",
}

var germanPhrases = []string{
	"Ich freue mich auf Ihre Rückmeldung.",
	"Melde dich, wenn du Fragen hast.",
	"Anbei die gewünschten Unterlagen.",
	"Wie besprochen schicke ich dir die Übersicht.",
	"Entschuldige die späte Antwort.",
	"Vielen Dank für die schnelle Rückmeldung!",
	"Könntest du bitte kurz drüberschauen?",
	"Nächste Woche bin ich nicht im Büro.",
}

// wrapLF writes text wrapped at 72 columns (counting runes), each line
// starting with prefix, LF line ends.
func wrapLF(b *strings.Builder, prefix, text string) {
	col := 0
	for _, w := range strings.Fields(text) {
		n := utf8.RuneCountInString(w)
		if col > 0 && col+1+n > 72 {
			b.WriteString("\n")
			col = 0
		}
		if col == 0 {
			b.WriteString(prefix)
			col = len(prefix)
		} else {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(w)
		col += n
	}
	b.WriteString("\n")
}

// textPart is text (LF line ends) as a text/plain part: 7bit US-ASCII when
// it is ASCII, else UTF-8, quoted-printable or 8bit.
func textPart(r *rand.Rand, text string) part {
	ascii := true
	for i := 0; i < len(text); i++ {
		if text[i] >= 0x80 {
			ascii = false
			break
		}
	}
	crlf := []byte(strings.ReplaceAll(text, "\n", "\r\n"))
	switch {
	case ascii:
		return part{header: []string{"Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"}, body: crlf}
	case r.IntN(100) < 30:
		return part{header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"}, body: crlf}
	default:
		return part{header: []string{"Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"}, body: qp(text)}
	}
}

// htmlPart is the text as HTML, one <p> per paragraph.
func htmlPart(text string) part {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head><body>\n")
	for _, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		b.WriteString("<p>")
		b.WriteString(strings.ReplaceAll(html.EscapeString(p), "\n", "<br>\n"))
		b.WriteString("</p>\n")
	}
	b.WriteString("</body></html>\n")
	return part{
		header: []string{"Content-Type: text/html; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"},
		body:   qp(b.String()),
	}
}

// attachmentKinds are file names (one %s: a date or number) and their
// MIME types.
var attachmentKinds = []struct{ name, mimeType string }{
	{"invoice-%s.pdf", "application/pdf"},
	{"report-%s.pdf", "application/pdf"},
	{"Rechnung-%s.pdf", "application/pdf"},
	{"Übersicht-%s.pdf", "application/pdf"},
	{"IMG_%s.jpg", "image/jpeg"},
	{"scan-%s.png", "image/png"},
	{"budget-%s.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	{"Protokoll-%s.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	{"slides-%s.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
	{"photos-%s.zip", "application/zip"},
	{"notes-%s.txt", "text/plain"},
	{"invite-%s.ics", "text/calendar"},
}

// namedAttachment is an attachment of a kind from attachmentKinds: most a
// few KB, one in thirty 200-800 KB. Text kinds hold words, the others
// random bytes.
func (g *gen) namedAttachment(r *rand.Rand, german bool, date time.Time) part {
	k := attachmentKinds[r.IntN(len(attachmentKinds))]
	name := fmt.Sprintf(k.name, date.Format("2006-01-02"))
	if strings.HasPrefix(k.name, "IMG_") {
		name = fmt.Sprintf(k.name, fmt.Sprint(1000+r.IntN(9000)))
	}
	size := 500 + int(r.ExpFloat64()*12000)
	if r.IntN(30) == 0 {
		size = 200<<10 + r.IntN(600<<10)
	}
	size = min(size, 1<<20)
	var disp string
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" {
		disp = fmt.Sprintf("Content-Disposition: attachment; filename=\"%s\"", name)
	} else {
		disp = "Content-Disposition: attachment; filename*=utf-8''" + pathEscape(name)
	}
	if strings.HasPrefix(k.mimeType, "text/") {
		l := &g.opts.Natural.english
		if german {
			l = &g.opts.Natural.german
		}
		var b strings.Builder
		for b.Len() < size {
			wrapLF(&b, "", paragraph(r, l, german))
		}
		return part{
			header: []string{"Content-Type: " + k.mimeType + "; charset=utf-8; name=\"" + asciiFold(name) + "\"", disp, "Content-Transfer-Encoding: quoted-printable"},
			body:   qp(b.String()),
		}
	}
	data := make([]byte, size)
	for j := 0; j < size; j += 8 {
		v := r.Uint64()
		for b := 0; b < 8 && j+b < size; b++ {
			data[j+b] = byte(v >> (8 * b))
		}
	}
	return part{
		header: []string{"Content-Type: " + k.mimeType + "; name=\"" + asciiFold(name) + "\"", disp, "Content-Transfer-Encoding: base64"},
		body:   b64(data),
	}
}

// pathEscape percent-encodes s for an RFC 2231 value.
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && (c == '-' || c == '.' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// headerText encodes s (RFC 2047) when it is not ASCII.
func headerText(s string) string {
	for _, c := range s {
		if c >= 0x80 {
			return qEncode(s)
		}
	}
	return s
}

func qEncode(s string) string { return mime.QEncoding.Encode("utf-8", s) }

// capitalizeRune upper-cases the first letter, umlauts too.
func capitalizeRune(w string) string {
	c, n := utf8.DecodeRuneInString(w)
	if c == utf8.RuneError {
		return w
	}
	return strings.ToUpper(string(c)) + w[n:]
}

package corpus

import (
	"bytes"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

// testVocabulary loads Debian's dictionaries once.
var testVocabulary = sync.OnceValues(LoadVocabulary)

// needVocabulary skips the test without the dictionaries, or fails it
// with CI=true (CI installs wamerican and wngerman).
func needVocabulary(t *testing.T) *Vocabulary {
	t.Helper()
	v, err := testVocabulary()
	if err != nil {
		if os.Getenv("CI") != "true" {
			t.Skipf("skipping: %v", err)
		}
		t.Fatal(err)
	}
	return v
}

func TestNaturalDeterministic(t *testing.T) {
	v := needVocabulary(t)
	o := Options{Natural: v}
	a := Generate(42, 300, o)
	v2, err := LoadVocabulary()
	if err != nil {
		t.Fatal(err)
	}
	b := Generate(42, 300, Options{Natural: v2})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and dictionaries, different corpus")
	}
	if !reflect.DeepEqual(Generate(42, 100, o), a[:100]) {
		t.Fatal("Generate(n=100) is not a prefix of Generate(n=300)")
	}
	if got := At(42, 250, o); !reflect.DeepEqual(got, a[250]) {
		t.Fatal("At(250) differs from Generate()[250]")
	}
	if bytes.Equal(At(43, 0, o).Raw, a[0].Raw) {
		t.Fatal("different seeds, same message")
	}
	if bytes.Equal(At(42, 0, Options{}).Raw, a[0].Raw) {
		t.Fatal("the natural corpus is the default one")
	}
}

// TestNatural: valid mail; Zipf-distributed text over a vocabulary of tens
// of thousands of words, German with umlauts, hundreds of senders, years
// of dates, named attachments, replies in threads.
func TestNatural(t *testing.T) {
	v := needVocabulary(t)
	if v.EnglishWords() < 30000 || v.GermanWords() < 30000 {
		t.Fatalf("vocabulary of %d English and %d German words, want tens of thousands", v.EnglishWords(), v.GermanWords())
	}
	n := 3000
	if testing.Short() {
		n = 1000
	}
	msgs := Generate(7, n, Options{Natural: v})
	dec := mime.WordDecoder{}
	words := map[string]int{}
	tokens := 0
	senders := map[string]bool{}
	folders := map[string]int{}
	flags := map[imap.Flag]int{}
	ids := map[string]bool{}
	var attachments, replies, umlauts, total int
	var prev Message
	for i, m := range msgs {
		total += len(m.Raw)
		for j, line := range bytes.Split(m.Raw, []byte("\r\n")) {
			if bytes.ContainsAny(line, "\r\n\x00") || len(line) > 998 {
				t.Fatalf("message %d line %d: bare CR/LF, NUL or too long", i, j)
			}
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		date, err := msg.Header.Date()
		if err != nil {
			t.Fatalf("message %d: Date: %v", i, err)
		}
		if d := m.Date.Sub(date); d <= 0 || d > 6*60e9 {
			t.Errorf("message %d: internal date %v is not shortly after Date %v", i, m.Date, date)
		}
		if i > 0 && !m.Date.After(prev.Date) {
			t.Errorf("message %d: dates do not ascend", i)
		}
		from, err := msg.Header.AddressList("From")
		if err != nil || len(from) != 1 {
			t.Fatalf("message %d: From %q: %v", i, msg.Header.Get("From"), err)
		}
		senders[from[0].Address] = true
		for _, f := range []string{"To", "Cc"} {
			if msg.Header.Get(f) != "" {
				if _, err := msg.Header.AddressList(f); err != nil {
					t.Errorf("message %d: %s %q: %v", i, f, msg.Header.Get(f), err)
				}
			}
		}
		subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || !utf8.ValidString(subj) || subj == "" {
			t.Errorf("message %d: Subject %q: %v", i, msg.Header.Get("Subject"), err)
		}
		if id := msg.Header.Get("Message-Id"); id != "<"+m.MessageID+">" || ids[id] {
			t.Errorf("message %d: Message-ID %q, want a new <%s>", i, id, m.MessageID)
		}
		ids[m.MessageID] = true
		if irt := msg.Header.Get("In-Reply-To"); irt != "" {
			replies++
			if !ids[strings.Trim(irt, "<>")] {
				t.Errorf("message %d replies to %s, not an earlier message", i, irt)
			}
		}
		if bytes.Contains(m.Raw, []byte("Content-Disposition: attachment")) {
			attachments++
		}
		walk(t, i, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		text := naturalPlainText(t, m)
		if strings.ContainsAny(text, "äöüßÄÖÜ") {
			umlauts++
		}
		for _, w := range strings.FieldsFunc(text, func(c rune) bool { return !unicode.IsLetter(c) }) {
			words[strings.ToLower(w)]++
			tokens++
		}
		folders[m.Folder]++
		for _, f := range m.Flags {
			flags[f]++
		}
		prev = m
	}
	t.Logf("%d messages, average %d bytes, %d tokens, %d distinct words, %d senders, %d replies, %d with attachments, %d with umlauts; folders %v; flags %v",
		n, total/n, tokens, len(words), len(senders), replies, attachments, umlauts, folders, flags)
	if avg := total / n; avg < 1500 || avg > 12000 {
		t.Errorf("average size %d, want a few KB", avg)
	}
	// Zipf: "the" is a few percent of English text, and a large part of
	// the vocabulary occurs, most words rarely.
	if f := float64(words["the"]) / float64(tokens); f < 0.01 || f > 0.06 {
		t.Errorf(`"the" is %.3f of the words, want a few percent`, f)
	}
	if len(words) < tokens/20 || len(words) < 5000 {
		t.Errorf("%d distinct words in %d, want a large vocabulary", len(words), tokens)
	}
	once := 0
	for _, c := range words {
		if c == 1 {
			once++
		}
	}
	if once < len(words)/4 {
		t.Errorf("%d of %d words occur once: no long tail", once, len(words))
	}
	if len(senders) < 150 {
		t.Errorf("%d senders, want hundreds", len(senders))
	}
	between := func(what string, got int, lo, hi float64) {
		if f := float64(got) / float64(n); f < lo || f > hi {
			t.Errorf("%s: %.3f of the messages, want %.2f to %.2f", what, f, lo, hi)
		}
	}
	between("replies", replies, 0.15, 0.35)
	between("attachments", attachments, 0.04, 0.12)
	between("umlauts", umlauts, 0.15, 0.45)
	for _, f := range NaturalFolders {
		if folders[f] == 0 {
			t.Errorf("no message in folder %q", f)
		}
	}
	for _, f := range []imap.Flag{imap.FlagSeen, imap.FlagFlagged, imap.FlagAnswered, imap.FlagDraft} {
		if flags[f] == 0 {
			t.Errorf("no message with %s", f)
		}
	}
	// 50 minutes a message: 50,000 span almost five years.
	if span, want := msgs[n-1].Date.Sub(msgs[0].Date), time.Duration(n-2)*naturalStep; span < want {
		t.Errorf("%d messages span %v, want at least %v", n, span, want)
	}
	if got := NaturalDate(50000).Sub(NaturalDate(0)); got < 4*365*24*time.Hour {
		t.Errorf("50,000 messages span %v, want years", got)
	}
}

// naturalPlainText is the message's decoded text/plain parts.
func naturalPlainText(t *testing.T, m Message) string {
	t.Helper()
	var out strings.Builder
	msg, _ := mail.ReadMessage(bytes.NewReader(m.Raw))
	var visit func(ctype, cte string, body []byte)
	visit = func(ctype, cte string, body []byte) {
		mt, params, _ := mime.ParseMediaType(ctype)
		if strings.HasPrefix(mt, "multipart/") {
			for _, p := range bytes.Split(body, []byte("--"+params["boundary"])) {
				h, b, ok := bytes.Cut(p, []byte("\r\n\r\n"))
				if !ok {
					continue
				}
				hm, err := mail.ReadMessage(bytes.NewReader(append(bytes.TrimLeft(h, "\r\n"), "\r\n\r\n"...)))
				if err != nil {
					continue
				}
				visit(hm.Header.Get("Content-Type"), hm.Header.Get("Content-Transfer-Encoding"), b)
			}
			return
		}
		if mt != "text/plain" {
			return
		}
		if strings.EqualFold(cte, "quoted-printable") {
			dec, err := readQP(body)
			if err != nil {
				t.Fatalf("%s: %v", m.MessageID, err)
			}
			body = dec
		}
		out.Write(body)
	}
	var body bytes.Buffer
	body.ReadFrom(msg.Body)
	visit(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), body.Bytes())
	return out.String()
}

func TestVocabularyMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadVocabularyFrom(filepath.Join(dir, "american-english"), DictGerman)
	if err == nil || !strings.Contains(err.Error(), "install Debian's wamerican") {
		t.Errorf("missing English list: %v, want it to name wamerican", err)
	}
	en := filepath.Join(dir, "en")
	if err := os.WriteFile(en, []byte("the\nof\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadVocabularyFrom(en, filepath.Join(dir, "ngerman"))
	if err == nil || !strings.Contains(err.Error(), "install Debian's wngerman") {
		t.Errorf("missing German list: %v, want it to name wngerman", err)
	}
}

func readQP(b []byte) ([]byte, error) {
	return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
}

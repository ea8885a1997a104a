package corpus

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
)

func TestDeterministic(t *testing.T) {
	a := Generate(42, 200, Options{})
	b := Generate(42, 200, Options{})
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed, different corpus")
	}
	prefix := Generate(42, 50, Options{})
	if !reflect.DeepEqual(prefix, a[:50]) {
		t.Fatal("Generate(n=50) is not a prefix of Generate(n=200)")
	}
	if got := At(42, 123, Options{}); !reflect.DeepEqual(got, a[123]) {
		t.Fatal("At(123) differs from Generate()[123]")
	}
	var streamed []Message
	if err := Each(42, 200, Options{}, func(m Message) error {
		streamed = append(streamed, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(streamed, a) {
		t.Fatal("Each differs from Generate")
	}
	other := Generate(43, 200, Options{})
	if bytes.Equal(other[0].Raw, a[0].Raw) {
		t.Fatal("different seeds, same message")
	}
}

func TestEachStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := Each(1, 100, Options{}, func(Message) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop || n != 3 {
		t.Fatalf("Each = %v after %d calls, want stop after 3", err, n)
	}
}

func TestValid(t *testing.T) {
	const n = 2000
	msgs := Generate(7, n, Options{})
	ids := map[string]bool{}
	kinds := map[kind]int{}
	folders := map[string]int{}
	flags := map[imap.Flag]int{}
	total := 0
	dec := mime.WordDecoder{}
	var prev Message
	for i, m := range msgs {
		total += len(m.Raw)
		checkCRLF(t, i, m.Raw)
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		date, err := msg.Header.Date()
		if err != nil {
			t.Fatalf("message %d: Date: %v", i, err)
		}
		if d := m.Date.Sub(date); d <= 0 || d > 3*60e9 {
			t.Errorf("message %d: internal date %v is not shortly after Date %v", i, m.Date, date)
		}
		if i > 0 && !m.Date.After(prev.Date) {
			t.Errorf("message %d: dates do not ascend", i)
		}
		if _, err := msg.Header.AddressList("From"); err != nil {
			t.Errorf("message %d: From %q: %v", i, msg.Header.Get("From"), err)
		}
		subj, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || !utf8.ValidString(subj) || subj == "" {
			t.Errorf("message %d: Subject %q: %v", i, msg.Header.Get("Subject"), err)
		}
		id := msg.Header.Get("Message-Id")
		if id != "<"+m.MessageID+">" {
			t.Errorf("message %d: Message-ID %q, want <%s>", i, id, m.MessageID)
		}
		if ids[id] {
			t.Errorf("message %d: duplicate Message-ID %s", i, id)
		}
		ids[id] = true
		walk(t, i, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)

		kinds[kindOf(firstDraw(7, i))]++
		folders[m.Folder]++
		for _, f := range m.Flags {
			flags[f]++
		}
		prev = m
	}

	avg := total / n
	t.Logf("average size %d bytes; kinds %v; folders %v; flags %v", avg, kinds, folders, flags)
	if avg < 1500 || avg > 8000 {
		t.Errorf("average size %d, want a few KB", avg)
	}
	share := func(k kind, want float64) {
		got := float64(kinds[k]) / n
		if got < want-0.05 || got > want+0.05 {
			t.Errorf("kind %d: share %.2f, want about %.2f", k, got, want)
		}
	}
	share(kindPlainASCII, 0.3)
	share(kindPlainQP, 0.3)
	share(kindAlternative, 0.2)
	share(kindIntl, 0.1)
	share(kindMixed, 0.1)
	for _, f := range DefaultFolders {
		if folders[f] == 0 {
			t.Errorf("no message in folder %q", f)
		}
	}
	if s := float64(flags[imap.FlagSeen]) / n; s < 0.15 || s > 0.25 {
		t.Errorf("\\Seen share %.2f, want about 0.2", s)
	}
	for _, f := range []imap.Flag{imap.FlagFlagged, imap.FlagAnswered, "$Label1"} {
		if flags[f] == 0 {
			t.Errorf("no message with %s", f)
		}
	}
}

// firstDraw replays the generator's first draw, which picks the kind.
func firstDraw(seed int64, i int) int {
	return newRand(seed, i).IntN(100)
}

func TestBigAttachment(t *testing.T) {
	opts := Options{BigAttachmentEvery: 5, BigAttachmentSize: 1 << 20}
	msgs := Generate(3, 20, opts)
	for i, m := range msgs {
		big := (i+1)%5 == 0
		if got := len(m.Raw) > 1<<20; got != big {
			t.Errorf("message %d: size %d, big=%v", i, len(m.Raw), big)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
		if err != nil {
			t.Fatal(err)
		}
		walk(t, i, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
	}
	if plain := Generate(3, 20, Options{Folders: []string{"INBOX"}}); plain[4].Folder != "INBOX" {
		t.Errorf("Folders option ignored: %q", plain[4].Folder)
	}
}

// walk parses a MIME entity recursively and decodes every leaf body.
func walk(t *testing.T, i int, ctype, cte string, body io.Reader) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Fatalf("message %d: Content-Type %q: %v", i, ctype, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		n := 0
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("message %d: %s: %v", i, mt, err)
			}
			walk(t, i, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
			n++
		}
		if n < 2 {
			t.Errorf("message %d: %s with %d parts", i, mt, n)
		}
		return
	}
	var r io.Reader
	switch strings.ToLower(cte) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body)
	case "7bit", "8bit", "":
		r = body
	default:
		t.Fatalf("message %d: unexpected encoding %q", i, cte)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("message %d: decoding %s %s: %v", i, mt, cte, err)
	}
	if strings.HasPrefix(mt, "text/") && !utf8.Valid(data) {
		t.Errorf("message %d: %s body is not UTF-8", i, mt)
	}
}

func checkCRLF(t *testing.T, i int, raw []byte) {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Errorf("message %d does not end in CRLF", i)
	}
	for j, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("message %d line %d: bare CR or LF", i, j)
		}
		if len(line) > 998 {
			t.Fatalf("message %d line %d: %d bytes", i, j, len(line))
		}
		for _, c := range line {
			if c >= 0x80 || c == 0 {
				t.Fatalf("message %d line %d: 8-bit byte %#x in %q", i, j, c, line)
			}
		}
	}
}

func TestDefaultFoldersHasNested(t *testing.T) {
	if !slices.Contains(DefaultFolders, "Lists/Go") || !slices.Contains(DefaultFolders, "Entwürfe") {
		t.Fatal("DefaultFolders must keep a nested and a non-ASCII folder")
	}
}

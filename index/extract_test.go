package index_test

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/internal/corpus"
)

// oldExtractText is the extraction ExtractText replaced (go-message's
// Walk: quadratic in the nesting depth, unbounded part count). It stays as
// the reference for well-formed mail.
func oldExtractText(r io.Reader, limit int) string {
	tagRE := regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>|<[^>]*>`)
	ent, err := message.Read(r)
	if ent == nil || (err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err)) {
		return ""
	}
	var b strings.Builder
	_ = ent.Walk(func(path []int, part *message.Entity, err error) error {
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return nil
		}
		if b.Len() >= limit {
			return io.EOF
		}
		t, _, _ := part.Header.ContentType()
		if t != "text/plain" && t != "text/html" && t != "" {
			return nil
		}
		if part.MultipartReader() != nil {
			return nil
		}
		if disp, _, _ := part.Header.ContentDisposition(); disp == "attachment" {
			return nil
		}
		chunk, _ := io.ReadAll(io.LimitReader(part.Body, int64(limit-b.Len())))
		s := string(chunk)
		if t == "text/html" {
			s = tagRE.ReplaceAllString(s, " ")
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(strings.ToValidUTF8(s, "\uFFFD"))
		return nil
	})
	return b.String()
}

// words is the text as its sequence of words: what the full-text index
// sees of it.
func words(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestExtractSameAsBefore: on the realistic corpus (plain, quoted-
// printable, base64, HTML, multipart/alternative and mixed, attachments,
// non-ASCII) the linear extraction gives the words the old one gave.
func TestExtractSameAsBefore(t *testing.T) {
	n := 400
	if testing.Short() {
		n = 100
	}
	for i, m := range corpus.Generate(11, n, corpus.Options{BigAttachmentEvery: 50, BigAttachmentSize: 64 << 10}) {
		got := index.ExtractText(context.Background(), bytes.NewReader(m.Raw), 128<<10)
		want := oldExtractText(bytes.NewReader(m.Raw), 128<<10)
		if words(got) != words(want) {
			t.Fatalf("message %d: extracted\n%.300q\nthe old extraction gave\n%.300q", i, got, want)
		}
		if len(want) > 0 && len(got) == 0 {
			t.Fatalf("message %d: nothing extracted", i)
		}
	}
	// Cut at the limit like before.
	m := corpus.Generate(11, 3, corpus.Options{})[2]
	if got, want := index.ExtractText(context.Background(), bytes.NewReader(m.Raw), 50),
		oldExtractText(bytes.NewReader(m.Raw), 50); got != want {
		t.Errorf("limit 50: %q, want %q", got, want)
	}
}

// measure runs fn once and returns its wall time and the bytes it
// allocated.
func measure(fn func()) (time.Duration, uint64) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	fn()
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	return d, after.TotalAlloc - before.TotalAlloc
}

// TestExtractDeepNesting: 10,000 nested multiparts (550 KB) took ~11 s and
// ~116 MB; now they take milliseconds and a few MB. The text of the levels
// within the depth cap is indexed; the message's deeper text is not.
func TestExtractDeepNesting(t *testing.T) {
	raw := corpus.DeepMIME(0, 10000)
	var got string
	d, alloc := measure(func() { got = index.ExtractText(context.Background(), bytes.NewReader(raw), 128<<10) })
	t.Logf("%d bytes, 10,000 levels: %v, %d KB allocated", len(raw), d, alloc>>10)
	if !strings.Contains(got, "shallow malmark00") {
		t.Errorf("the outermost text part is not extracted: %q", got)
	}
	if strings.Contains(got, "deepestword") {
		t.Errorf("text below the depth cap was extracted")
	}
	// Budgets loose enough for a loaded 2-core machine: idle it takes
	// a few ms and well under 1 MB (the old extraction: over a minute and
	// 472 MB here).
	if d > time.Second {
		t.Errorf("took %v", d)
	}
	if alloc > 4<<20 {
		t.Errorf("allocated %d MB", alloc>>20)
	}
}

// TestExtractManyParts: of 10,000 parts the first ones are indexed (up to
// the part cap), quickly and in bounded memory.
func TestExtractManyParts(t *testing.T) {
	raw := corpus.ManyParts(0, 10000)
	var got string
	d, alloc := measure(func() { got = index.ExtractText(context.Background(), bytes.NewReader(raw), 128<<10) })
	t.Logf("%d bytes, 10,000 parts: %v, %d KB allocated", len(raw), d, alloc>>10)
	for _, w := range []string{"malmark00", "partword1\n", "partword500\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("%q not extracted", w)
		}
	}
	if strings.Contains(got, "partword9999") {
		t.Errorf("parts beyond the cap were extracted")
	}
	if d > time.Second {
		t.Errorf("took %v", d)
	}
	if alloc > 16<<20 {
		t.Errorf("allocated %d MB", alloc>>20)
	}
	// The text kept is bounded by the limit.
	if got := index.ExtractText(context.Background(), bytes.NewReader(raw), 1000); len(got) > 1000+1 {
		t.Errorf("limit 1000: %d bytes", len(got))
	}
}

// endless is a message that never ends: a header, then parts (or one
// text part) forever.
type endless struct {
	head, unit []byte
	off        int
	read       int
	started    chan struct{} // closed once 4 MB have been read
}

func (e *endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(e.head) > 0 {
			c := copy(p[n:], e.head)
			e.head = e.head[c:]
			n += c
			continue
		}
		c := copy(p[n:], e.unit[e.off:])
		e.off = (e.off + c) % len(e.unit)
		n += c
	}
	if e.read < 4<<20 && e.read+n >= 4<<20 {
		close(e.started)
	}
	e.read += n
	return n, nil
}

// TestExtractCancel: a cancelled context stops the extraction promptly,
// inside a part (an endless text body) and between parts (endless nested
// and non-text parts).
func TestExtractCancel(t *testing.T) {
	for _, c := range []struct {
		name string
		r    *endless
	}{
		{"text part", &endless{head: []byte("Subject: x\r\n\r\n"), unit: []byte("endless text line\r\n")}},
		{"attachment", &endless{head: []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/pdf\r\n\r\n"),
			unit: []byte("JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZUR\r\n")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan string, 1)
			c.r.started = make(chan struct{})
			go func() { done <- index.ExtractText(ctx, c.r, 128<<10) }()
			<-c.r.started // well into the message
			cancel()
			start := time.Now()
			select {
			case <-done:
				t.Logf("returned %v after the cancel", time.Since(start))
			case <-time.After(5 * time.Second):
				t.Fatal("still extracting 5s after the cancel")
			}
		})
	}
}

// TestExtractMalformed: every kind of the malformed corpus is extracted
// quickly, without a panic, its marker found where it is in the text.
func TestExtractMalformed(t *testing.T) {
	for _, k := range corpus.Malformed() {
		var got string
		d, _ := measure(func() { got = index.ExtractText(context.Background(), bytes.NewReader(k.Raw), 128<<10) })
		if d > time.Second {
			t.Errorf("%s: took %v", k.Name, d)
		}
		switch k.Name {
		case "invalid-charset-body", "html-unclosed-script", "deep-nesting", "many-parts":
			if !strings.Contains(got, k.Marker) {
				t.Errorf("%s: marker %s not in %.200q", k.Name, k.Marker, got)
			}
		case "huge-boundary", "unterminated-multipart", "boundary-never-closed", "same-boundary-nested":
			if !strings.Contains(got, "part") && !strings.Contains(got, "inner") {
				t.Errorf("%s: no part text in %.200q", k.Name, got)
			}
		}
		if !utf8Valid(got) {
			t.Errorf("%s: invalid UTF-8", k.Name)
		}
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "") == s }

// TestExtractLongHeader: a part's header beyond the cap loses only the
// field that does not fit: the Content-Type after a 1 MB field is read (a
// text/html part is stripped of its tags), and so is one before it.
func TestExtractLongHeader(t *testing.T) {
	long := "X-Long: " + strings.Repeat("h", 1<<20) + "\r\n"
	for _, raw := range []string{
		"Subject: x\r\n" + long + "Content-Type: text/html\r\n\r\n<b>bold</b> text\r\n",
		"Subject: x\r\nContent-Type: text/html\r\n" + long + "\r\n<b>bold</b> text\r\n",
		"Subject: x\r\n" + strings.Repeat("X-Folded: a\r\n"+strings.Repeat(" folded\r\n", 2000), 10) + "Content-Type: text/html\r\n\r\n<b>bold</b> text\r\n",
	} {
		got := index.ExtractText(context.Background(), strings.NewReader(raw), 1000)
		if words(got) != "bold text" {
			t.Errorf("%.40q...: extracted %.100q, want the text without tags", raw, got)
		}
	}
}

// TestExtractNestedMessage: the text of a message forwarded inside the
// message (a message/rfc822 part) is extracted too; an attachment after
// it is not.
func TestExtractNestedMessage(t *testing.T) {
	raw := "Subject: Fwd\r\nContent-Type: multipart/mixed; boundary=outer\r\n\r\n" +
		"--outer\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n" +
		"--outer\r\nContent-Type: message/rfc822\r\n\r\n" +
		"Subject: original\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n" +
		"--inner\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nOriginal text from K=C3=B6ln.\r\n--inner--\r\n" +
		"--outer\r\nContent-Type: application/octet-stream\r\n\r\nbinaryjunk\r\n--outer--\r\n"
	got := words(index.ExtractText(context.Background(), strings.NewReader(raw), 1<<10))
	if want := "See below. Original text from Köln."; got != want {
		t.Errorf("extracted %q, want %q", got, want)
	}
}

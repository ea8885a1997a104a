package corpus

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// MalformedKind is one kind of malformed message: what real servers hand
// out and real mail programs leave behind, which every part of postfach
// must store byte for byte and survive.
type MalformedKind struct {
	Name string // short, unique, e.g. "bare-lf"
	// Marker is a word (one full-text token) in the message's Subject or
	// text body that the index should find; "" when the kind has no
	// decodable Subject or text (no header, an undecodable body).
	Marker string
	Raw    []byte
}

// DupMessageID is the Message-ID the kinds "dup-id-*" share: different
// messages with one Message-ID, each of which must be kept.
const DupMessageID = "dup@malformed.example.org"

// Malformed returns the malformed corpus, at least 30 kinds, the same each
// call. Unless its kind says otherwise, a message has CRLF line ends, a
// unique Message-ID <malformed-NN@malformed.example.org> and its Marker
// in the Subject.
func Malformed() []MalformedKind {
	var out []MalformedKind
	add := func(name string, marker bool, raw []byte) {
		k := MalformedKind{Name: name, Raw: raw}
		if marker {
			k.Marker = markerOf(len(out))
		}
		out = append(out, k)
	}
	n := func() int { return len(out) } // the number the next kind gets
	std := func(extra string) string { return stdHeader(n(), extra) }
	text := "Content-Type: text/plain; charset=us-ascii\r\n"

	// Line ends.
	add("bare-lf", true, []byte(strings.ReplaceAll(std(text)+"\r\nline one\r\nline two\r\n", "\r\n", "\n")))
	add("bare-cr", true, []byte(strings.ReplaceAll(std(text)+"\r\nline one\r\nline two\r\n", "\r\n", "\r")))
	add("mixed-eol", true, []byte(std(text)+"\r\ncrlf\r\nlf\ncr\rcrcrlf\r\r\nlfcr\n\rend\r\n"))
	add("no-final-newline", true, []byte(std(text)+"\r\nthe last line has no line end"))
	add("long-body-line", true, []byte(std(text)+"\r\n"+strings.Repeat("x", 1<<20)+"\r\n"))

	// NUL and other control bytes.
	add("nul-in-header", true, []byte(std(text+"X-Nul: a\x00b\r\n")+"\r\nbody\r\n"))
	add("nul-in-body", true, []byte(std(text)+"\r\nbefore\x00after\x00\x00\r\n"))
	add("esc-in-header", false, []byte(stdHeaderFields(n(), "From: \x1b[31mRed\x1b[0m <red@example.org>\r\n",
		"=?utf-8?q?=1B]0;owned=07=1B[2J?= \x1b[1mbold")+text+"\r\nbody\r\n"))

	// 8-bit and badly encoded headers, invalid charsets.
	add("8bit-header-utf8", true, []byte(stdHeaderFields(n(), "From: Jürgen Müller <j@example.org>\r\n",
		markerOf(n())+" Grüße 日本語")+text+"\r\nbody\r\n"))
	add("8bit-header-latin1", true, []byte(stdHeaderFields(n(), "From: J\xfcrgen <j@example.org>\r\n",
		markerOf(n())+" Gr\xfc\xdfe")+text+"\r\nbody\r\n"))
	add("rfc2047-garbage", true, []byte(stdHeaderFields(n(), "From: =?utf-8?B?!!!?= <g@example.org>\r\n",
		markerOf(n())+" =?utf-8?B?!!!notbase64?= =?utf-8?Q?=ZZ=?= =?utf-8?q?unterminated")+text+"\r\nbody\r\n"))
	add("rfc2047-unknown-charset", true, []byte(stdHeaderFields(n(), "From: =?x-klingon?Q?Worf?= <w@example.org>\r\n",
		markerOf(n())+" =?x-klingon?Q?tlhIngan?=")+"Content-Type: text/plain; charset=x-klingon\r\n\r\nQapla'\r\n"))
	add("invalid-charset-body", true, []byte(std("Content-Type: text/plain; charset=\"utf-8\r\n")+"\r\n\xff\xfe\xc3\x28 "+markerOf(n())+"\r\n"))
	add("invalid-utf8-body", true, []byte(std("Content-Type: text/plain; charset=utf-8\r\n")+"\r\n\xff\xfe\xc3\x28 text\r\n"))
	add("8bit-body-no-charset", true, []byte(std("")+"\r\nGr\xfc\xdfe aus K\xf6ln\r\n"))

	// No header, header only.
	add("no-header", false, []byte("\r\nA body without any header.\r\n"))
	add("no-header-at-all", false, []byte("Just some text,\r\nno header and no blank line.\r\n"))
	add("header-only", true, []byte(std(text)))
	add("header-only-no-eol", true, []byte(strings.TrimSuffix(std(text), "\r\n")))
	add("blank-line-only", false, []byte("\r\n"))
	add("space-first-line", true, []byte("  X-Indented: first line starts with a blank\r\n"+std(text)+"\r\nbody\r\n"))
	add("not-a-header-line", true, []byte(std("This line has no colon\r\n\xff\xfe: bad key\r\n"+text)+"\r\nbody\r\n"))
	add("duplicate-headers", true, []byte(std(text+"Subject: second subject\r\nFrom: second <s@example.org>\r\n"+
		"Date: Tue, 3 Jan 2023 10:00:00 +0000\r\nContent-Type: text/html\r\n")+"\r\nbody\r\n"))
	add("long-header-line", true, []byte(std(text+"X-Long: "+strings.Repeat("h", 1<<20)+"\r\n")+"\r\nbody\r\n"))
	add("long-folded-header", true, []byte(std(text+"X-Folded: "+strings.Repeat("folded words\r\n ", 1<<16)+"end\r\n")+"\r\nbody\r\n"))
	add("many-header-fields", true, []byte(std(text+manyFields(20000))+"\r\nbody\r\n"))

	// Message-IDs.
	add("no-message-id", true, []byte(strings.Replace(std(text), fmt.Sprintf("Message-ID: <malformed-%02d@malformed.example.org>\r\n", n()), "", 1)+"\r\nbody\r\n"))
	add("empty-message-id", true, []byte(withID(std(text), n(), "Message-ID: <>\r\n")+"\r\nbody\r\n"))
	add("garbage-message-id", true, []byte(withID(std(text), n(), "Message-ID: not an id\x01 at all\r\nMessage-ID: <second@x>\r\n")+"\r\nbody\r\n"))
	for _, v := range []string{"a", "b", "c"} {
		// c differs from b in one byte of the body only.
		body := "first of three with one Message-ID"
		if v != "a" {
			body = "other content, same Message-ID " + v
		}
		add("dup-id-"+v, true, []byte(withID(std(text), n(), "Message-ID: <"+DupMessageID+">\r\n")+"\r\n"+body+"\r\n"))
	}

	// Dates.
	add("invalid-date", true, []byte(withDate(std(text), "Date: yesterday at noon\r\n")+"\r\nbody\r\n"))
	add("date-out-of-range", true, []byte(withDate(std(text), "Date: Fri, 31 Feb 99999 25:61:61 +9999\r\n")+"\r\nbody\r\n"))
	add("no-date", true, []byte(withDate(std(text), "")+"\r\nbody\r\n"))

	// Transfer encodings.
	add("truncated-base64", true, []byte(std("Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n")+"\r\nSGVsbG8gd29y\r\nbGQ!!!\r\nSGV"))
	add("bad-quoted-printable", true, []byte(std("Content-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n")+"\r\nbad =ZZ escape=\r\nsoft=\r\n=\r\n=4"))
	add("unknown-cte", true, []byte(std("Content-Type: text/plain\r\nContent-Transfer-Encoding: x-garbage\r\n")+"\r\nencoded somehow\r\n"))

	// Multipart.
	mp := func(b string) string { return "Content-Type: multipart/mixed; boundary=\"" + b + "\"\r\n" }
	add("unterminated-multipart", true, []byte(std(mp("u"))+"\r\n--u\r\n"+text+"\r\nfirst part\r\n--u\r\n"+text+"\r\nsecond part, cut"))
	add("boundary-never-appears", true, []byte(std(mp("nope"))+"\r\n--other\r\n"+text+"\r\nnot a part\r\n--other--\r\n"))
	add("boundary-never-closed", true, []byte(std(mp("open"))+"\r\n--open\r\n"+text+"\r\npart one\r\n--open\r\n"+text+"\r\npart two\r\n"))
	huge := strings.Repeat("B", 4000)
	add("huge-boundary", true, []byte(std(mp(huge))+"\r\n--"+huge+"\r\n"+text+"\r\nin a part\r\n--"+huge+"--\r\n"))
	add("empty-boundary", true, []byte(std(mp(""))+"\r\n--\r\n"+text+"\r\nempty boundary\r\n----\r\n"))
	add("multipart-no-boundary", true, []byte(std("Content-Type: multipart/mixed\r\n")+"\r\n--x\r\n\r\nno boundary parameter\r\n--x--\r\n"))
	add("same-boundary-nested", true, []byte(std(mp("s"))+"\r\n--s\r\n"+mp("s")+"\r\n--s\r\n"+text+"\r\ninner\r\n--s--\r\n--s--\r\n"))
	add("truncated-rfc822", true, []byte(std(mp("r"))+"\r\n--r\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@example.org\r\nSubject: inn"))
	add("html-unclosed-script", true, []byte(std("Content-Type: text/html; charset=utf-8\r\n")+"\r\n<p>"+markerOf(n())+"</p>"+
		strings.Repeat("<script>x", 20000)+"<style\r\n"))
	add("deep-nesting", true, DeepMIME(n(), 10000))
	add("many-parts", true, ManyParts(n(), 10000))
	return out
}

// markerOf is the marker word of kind i: one token for the full-text index.
func markerOf(i int) string { return fmt.Sprintf("malmark%02d", i) }

// malformedDate is the Date of every malformed message that has a valid one.
var malformedDate = time.Date(2023, 1, 2, 10, 0, 0, 0, time.UTC)

// stdHeader is the usual header of kind i plus extra lines, without the
// blank line.
func stdHeader(i int, extra string) string {
	return stdHeaderFields(i, "From: Tester <tester@example.org>\r\n", markerOf(i)+" malformed message") + extra
}

// stdHeaderFields is a header with the given From line and Subject, the
// kind's Message-ID, a Date and MIME-Version, without the blank line.
func stdHeaderFields(i int, from, subject string) string {
	return from + "To: you@example.org\r\nSubject: " + subject + "\r\n" +
		"Date: " + malformedDate.Format(time.RFC1123Z) + "\r\n" +
		fmt.Sprintf("Message-ID: <malformed-%02d@malformed.example.org>\r\n", i) +
		"MIME-Version: 1.0\r\n"
}

func withID(header string, i int, line string) string {
	return strings.Replace(header, fmt.Sprintf("Message-ID: <malformed-%02d@malformed.example.org>\r\n", i), line, 1)
}

func withDate(header, line string) string {
	return strings.Replace(header, "Date: "+malformedDate.Format(time.RFC1123Z)+"\r\n", line, 1)
}

func manyFields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "X-Field-%d: value %d\r\n", i, i)
	}
	return b.String()
}

// DeepMIME returns message i of the malformed corpus's kind "deep-nesting":
// multiparts nested levels deep (about 55 bytes a level: 550 KB for
// 10,000), whose outermost multipart starts with a text part holding the
// kind's marker and whose innermost holds the word "deepestword".
func DeepMIME(i, levels int) []byte {
	var b bytes.Buffer
	b.WriteString(stdHeader(i, "Content-Type: multipart/mixed; boundary=\"b0\"\r\n"))
	b.WriteString("\r\n--b0\r\nContent-Type: text/plain\r\n\r\nshallow " + markerOf(i) + "\r\n")
	for l := 0; l < levels-1; l++ {
		fmt.Fprintf(&b, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", l, l+1)
	}
	fmt.Fprintf(&b, "--b%d\r\nContent-Type: text/plain\r\n\r\ndeepestword\r\n", levels-1)
	for l := levels - 1; l >= 0; l-- {
		fmt.Fprintf(&b, "--b%d--\r\n", l)
	}
	return b.Bytes()
}

// ManyParts returns message i of the malformed corpus's kind "many-parts":
// one multipart/mixed of n small text parts, the first holding the kind's
// marker and part k the word "partword<k>".
func ManyParts(i, n int) []byte {
	var b bytes.Buffer
	b.WriteString(stdHeader(i, "Content-Type: multipart/mixed; boundary=\"p\"\r\n"))
	b.WriteString("\r\n--p\r\nContent-Type: text/plain\r\n\r\n" + markerOf(i) + "\r\n")
	for k := 1; k < n; k++ {
		fmt.Fprintf(&b, "--p\r\nContent-Type: text/plain\r\n\r\npartword%d\r\n", k)
	}
	b.WriteString("--p--\r\n")
	return b.Bytes()
}

// MalformedMessages is Malformed as Messages in folder, dated a minute
// apart in corpus order, without flags (for testenv's Seed). MessageID is
// the Message-ID header's value where the kind has a plain one.
func MalformedMessages(folder string) []Message {
	var out []Message
	for i, k := range Malformed() {
		id := fmt.Sprintf("malformed-%02d@malformed.example.org", i)
		if !bytes.Contains(k.Raw, []byte("<"+id+">")) {
			id = ""
			if strings.HasPrefix(k.Name, "dup-id-") {
				id = DupMessageID
			}
		}
		out = append(out, Message{Folder: folder, Date: malformedDate.Add(time.Duration(i) * time.Minute), MessageID: id, Raw: k.Raw})
	}
	return out
}

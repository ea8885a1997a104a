package maildir

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// Fuzz targets for the line-end conversions (stored LF form <-> wire CRLF
// form) and the flag encodings. Each checks properties against a
// reference written another way.

// crlfRef is the wire form of a stored message byte by byte: an LF not
// preceded by CR gets one.
func crlfRef(stored []byte) []byte {
	var out []byte
	for i, b := range stored {
		if b == '\n' && (i == 0 || stored[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, b)
	}
	return out
}

// writeSplit writes b to w in pieces whose sizes follow from split.
func writeSplit(t *testing.T, w io.Writer, b []byte, split uint8) {
	step := int(split%17) + 1
	for len(b) > 0 {
		n := min(step, len(b))
		if k, err := w.Write(b[:n]); err != nil || k != n {
			t.Fatalf("Write = %d, %v", k, err)
		}
		b = b[n:]
		step = step*5%11 + 1
	}
}

// FuzzCRLFWriter: the wire form is the reference's whatever the writes'
// sizes, N, CRLFSize and CopyCRLF count exactly the bytes written, and the
// wire form has no bare LF.
func FuzzCRLFWriter(f *testing.F) {
	f.Add([]byte("Subject: x\n\nbody\n"), uint8(0))
	f.Add([]byte("a\r\nb\rc\n\r"), uint8(1))
	f.Add([]byte("\n\n\r\r\n"), uint8(2))
	f.Add([]byte(""), uint8(3))
	f.Fuzz(func(t *testing.T, stored []byte, split uint8) {
		var buf bytes.Buffer
		cw := NewCRLFWriter(&buf)
		writeSplit(t, cw, stored, split)
		want := crlfRef(stored)
		if !bytes.Equal(buf.Bytes(), want) {
			t.Fatalf("CRLFWriter(%q) = %q, want %q", stored, buf.Bytes(), want)
		}
		if cw.N() != int64(len(want)) {
			t.Fatalf("CRLFWriter(%q).N() = %d, wrote %d", stored, cw.N(), len(want))
		}
		if n, err := CRLFSize(bytes.NewReader(stored)); err != nil || n != int64(len(want)) {
			t.Fatalf("CRLFSize(%q) = %d, %v; want %d", stored, n, err, len(want))
		}
		if bytes.Contains(bytes.ReplaceAll(want, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("CRLFWriter(%q) = %q has a bare LF", stored, want)
		}
		var out bytes.Buffer
		if err := CopyCRLF(&out, bytes.NewReader(stored), int64(len(want))); err != nil || !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("CopyCRLF(%q) = %q, %v", stored, out.Bytes(), err)
		}
		if err := CopyCRLF(io.Discard, bytes.NewReader(stored), int64(len(want))+1); !errors.Is(err, ErrSizeChanged) {
			t.Fatalf("CopyCRLF(%q) with a wrong size: %v", stored, err)
		}
	})
}

// headerRef is what Delivery.Header keeps of a stored message: up to and
// including the first empty line, at most MaxHeader bytes.
func headerRef(stored []byte) []byte {
	h := stored
	switch i := bytes.Index(stored, []byte("\n\n")); {
	case len(stored) > 0 && stored[0] == '\n':
		h = stored[:1]
	case i >= 0:
		h = stored[:i+2]
	}
	return h[:min(len(h), MaxHeader)]
}

// FuzzDeliveryRoundTrip: a Delivery stores the wire bytes with each CRLF as
// LF (and nothing else changed), whatever the writes' sizes, and counts,
// hashes and keeps the header of exactly what it stored; the stored form
// goes back on the wire as it came when the wire form had CRLF line ends
// (no bare LF, no CR before a CRLF), and a stored form without CRLF
// survives the way out and back.
func FuzzDeliveryRoundTrip(f *testing.F) {
	f.Add([]byte("Subject: x\r\n\r\nbody\r\n"), uint8(0))
	f.Add([]byte("a\rb\r\r\nc\n\r"), uint8(1))
	f.Add([]byte("\r\n\r\n\r"), uint8(2))
	f.Add([]byte("no header end\r\n"), uint8(5))
	dir, err := Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	deliver := func(t *testing.T, wire []byte, split uint8) []byte {
		w, err := dir.NewDelivery()
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		writeSplit(t, w, wire, split)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		stored, err := os.ReadFile(w.Path())
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.ReplaceAll(wire, []byte("\r\n"), []byte("\n")); !bytes.Equal(stored, want) {
			t.Fatalf("Delivery(%q) stored %q, want %q", wire, stored, want)
		}
		if w.Size() != int64(len(stored)) || w.Sum() != sha256.Sum256(stored) {
			t.Fatalf("Delivery(%q): size %d, sum %x for %q", wire, w.Size(), w.Sum(), stored)
		}
		if !bytes.Equal(w.Header(), headerRef(stored)) {
			t.Fatalf("Delivery(%q): header %q, want %q", wire, w.Header(), headerRef(stored))
		}
		return stored
	}
	f.Fuzz(func(t *testing.T, wire []byte, split uint8) {
		stored := deliver(t, wire, split)
		bareLF := bytes.Contains(bytes.ReplaceAll(wire, []byte("\r\n"), nil), []byte("\n"))
		if !bareLF && !bytes.Contains(wire, []byte("\r\r\n")) {
			if back := crlfRef(stored); !bytes.Equal(back, wire) {
				t.Fatalf("wire %q stored as %q goes out as %q", wire, stored, back)
			}
		}
		// The same bytes taken as a stored message without CRLF: out and
		// back in.
		if !bytes.Contains(wire, []byte("\r\n")) {
			var out bytes.Buffer
			writeSplit(t, NewCRLFWriter(&out), wire, split)
			if again := deliver(t, out.Bytes(), split+1); !bytes.Equal(again, wire) {
				t.Fatalf("stored %q went out as %q and came back as %q", wire, out.Bytes(), again)
			}
		}
	})
}

// FuzzFlags: a set of flags survives its Maildir info part and its IMAP
// flags; ParseInfo reads exactly the known letters of a version-2 info;
// FlagsFromIMAP sorts any flag list into flags and keywords as IMAP
// defines them (flags case-insensitively, keywords once each).
func FuzzFlags(f *testing.F) {
	f.Add(uint8(0x3f), "2,FRS", `\Seen \SEEN $forwarded $Label1 $label1 \Recent`)
	f.Add(uint8(0), "1,S", ``)
	f.Add(uint8(7), "S", `\* \`)
	f.Fuzz(func(t *testing.T, fl uint8, info, list string) {
		flags := Flags(fl) & (1<<6 - 1)
		if got := ParseInfo(flags.Info()); got != flags {
			t.Fatalf("ParseInfo(%q) = %q", flags.Info(), got.Info())
		}
		if got, kw := FlagsFromIMAP(flags.IMAP()); got != flags || len(kw) != 0 {
			t.Fatalf("FlagsFromIMAP(%q) = %q, %q", flags.IMAP(), got.Info(), kw)
		}
		// ParseInfo against a reference.
		var want Flags
		letters := info
		if rest, ok := strings.CutPrefix(info, "2,"); ok {
			letters = rest
		} else if len(info) >= 2 && info[1] == ',' {
			letters = ""
		}
		for _, c := range []byte(letters) {
			want |= map[byte]Flags{'D': FlagDraft, 'F': FlagFlagged, 'P': FlagPassed, 'R': FlagAnswered, 'S': FlagSeen, 'T': FlagDeleted}[c]
		}
		if got := ParseInfo(info); got != want {
			t.Fatalf("ParseInfo(%q) = %q, want %q", info, got.Info(), want.Info())
		}
		// FlagsFromIMAP against a reference.
		var in []imap.Flag
		for _, w := range strings.Fields(list) {
			in = append(in, imap.Flag(w))
		}
		got, kw := FlagsFromIMAP(in)
		want = 0
		var wantKw []string
		for _, x := range in {
			s := string(x)
			switch {
			case strings.EqualFold(s, `\Seen`):
				want |= FlagSeen
			case strings.EqualFold(s, `\Answered`):
				want |= FlagAnswered
			case strings.EqualFold(s, `\Flagged`):
				want |= FlagFlagged
			case strings.EqualFold(s, `\Deleted`):
				want |= FlagDeleted
			case strings.EqualFold(s, `\Draft`):
				want |= FlagDraft
			case strings.EqualFold(s, `$Forwarded`):
				want |= FlagPassed
			case strings.HasPrefix(s, `\`):
			case !slices.ContainsFunc(wantKw, func(k string) bool { return strings.EqualFold(k, s) }):
				wantKw = append(wantKw, s)
			}
		}
		if got != want || !slices.Equal(kw, wantKw) {
			t.Fatalf("FlagsFromIMAP(%q) = %q, %q; want %q, %q", in, got.Info(), kw, want.Info(), wantKw)
		}
	})
}

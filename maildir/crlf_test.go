package maildir

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestCRLFWriter(t *testing.T) {
	for _, in := range []string{"a\nb\n", "a\r\nb\n", "\n", "x\r", "a\rb\n", ""} {
		var out bytes.Buffer
		w := NewCRLFWriter(&out)
		for i := range in { // one byte at a time: CR and LF in different writes
			w.Write([]byte{in[i]})
		}
		want := ""
		for i := 0; i < len(in); i++ {
			if in[i] == '\n' && (i == 0 || in[i-1] != '\r') {
				want += "\r"
			}
			want += string(in[i])
		}
		if out.String() != want || w.N() != int64(len(want)) {
			t.Errorf("%q -> %q (n=%d), want %q", in, out.String(), w.N(), want)
		}
		if n, _ := CRLFSize(bytes.NewReader([]byte(in))); n != int64(len(want)) {
			t.Errorf("CRLFSize(%q) = %d, want %d", in, n, len(want))
		}
	}
}

func TestCopyCRLF(t *testing.T) {
	msg := "Subject: x\n\nline\r\nlast\n"
	var out bytes.Buffer
	if err := CopyCRLF(&out, strings.NewReader(msg), 26); err != nil || out.String() != "Subject: x\r\n\r\nline\r\nlast\r\n" {
		t.Errorf("CopyCRLF = %q, %v", out.String(), err)
	}
	// The file grew after its size was taken.
	if err := CopyCRLF(io.Discard, strings.NewReader(msg+"more\n"), 26); !errors.Is(err, ErrSizeChanged) {
		t.Errorf("a changed file: err = %v, want ErrSizeChanged", err)
	}
}

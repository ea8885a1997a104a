package maildir

import (
	"bytes"
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

package index_test

import (
	"bytes"
	"context"
	"testing"
	"unicode/utf8"

	"github.com/postfach/postfach/index"
)

// FuzzParse: any bytes a server may send parse without a panic (the message
// is stored byte for byte whatever the parser makes of it).
func FuzzParse(f *testing.F) {
	f.Add([]byte("Subject: hi\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/html\n\n<b>hi</b>\n--x--\n"))
	f.Add([]byte("From: =?ISO-8859-1?Q?J=FCrgen?= <j@x>\nContent-Transfer-Encoding: base64\n\n!!!notbase64"))
	f.Add([]byte("Content-Type: text/plain; charset=unknown-8bit\n\n\xff\xfe"))
	f.Add([]byte("Content-Type: text/html\n\n\xff\xff\xff\xff\xff\xff\xff\xff<script>x</script>"))
	f.Add([]byte(" X: y\nContent-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/alternative; boundary=b\n\n--b\n\ntext\n--a--\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		index.ParseHeader(raw)
		for _, limit := range []int{4096, 7} {
			txt := index.ExtractText(context.Background(), bytes.NewReader(raw), limit)
			if len(txt) > limit || !utf8.ValidString(txt) {
				t.Fatalf("limit %d: %d bytes of text, valid UTF-8 %v", limit, len(txt), utf8.ValidString(txt))
			}
		}
	})
}

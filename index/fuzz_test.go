package index_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/postfach/postfach/index"
)

// FuzzParse: any bytes a server may send parse without a panic (the message
// is stored byte for byte whatever the parser makes of it).
func FuzzParse(f *testing.F) {
	f.Add([]byte("Subject: hi\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/html\n\n<b>hi</b>\n--x--\n"))
	f.Add([]byte("From: =?ISO-8859-1?Q?J=FCrgen?= <j@x>\nContent-Transfer-Encoding: base64\n\n!!!notbase64"))
	f.Add([]byte("Content-Type: text/plain; charset=unknown-8bit\n\n\xff\xfe"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		index.ParseHeader(raw)
		index.ExtractText(context.Background(), bytes.NewReader(raw), 4096)
	})
}

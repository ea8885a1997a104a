package imapconn

import (
	"io"
	"net"
	"testing"
)

// TestLazyUploaderBroken: once the run's MULTIAPPEND connection broke (in
// one folder's upload), the other folders upload on their own connection
// instead of failing with that folder's error under their name.
func TestLazyUploaderBroken(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	u := &Uploader{}
	u.setConn(a)
	ready := make(chan struct{})
	close(ready)
	l := &LazyUploader{ready: ready, up: u}
	if l.Get(t.Context(), nil) != u {
		t.Fatal("a working uploader is not handed out")
	}
	b.Close() // the server goes away in the middle of an upload
	_, err := u.AppendMany(t.Context(), "Archive", []UploadMsg{{Size: 3, Write: func(w io.Writer) error { _, err := w.Write([]byte("x\r\n")); return err }}})
	if err == nil {
		t.Fatal("no error from a dead connection")
	}
	if got := l.Get(t.Context(), nil); got != nil {
		t.Errorf("a broken uploader is handed out to the next folder")
	}
}
